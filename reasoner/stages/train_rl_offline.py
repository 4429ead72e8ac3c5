"""`reasoner train-rl algo=oreo|rft|dpo`: offline RL from collected trajectories (ALGORITHMS.md §6).

OREO trains the policy and a separate value model (a copy of the starting policy's backbone with
a zero-initialised head) against the frozen starting policy as reference; RFT (SFT on the
correct samples) and DPO (correct/incorrect pairs per problem) are the paper's baselines on the
same data. `rounds=K` is iterative: round k>1 collects with round k-1's policy (balanced
selection) into run_dir/round-k/collect and trains again from round k-1's policy and value model,
with that round's starting policy as the reference; every round's data and models are kept.

Outputs (run_dir, or run_dir/round-k when rounds > 1): metrics.jsonl, resumable checkpoints/,
final/ (policy, LoRA merged; adapter/ too with LoRA), value/ (OREO: a ValueModel directory that
`reasoner decode` loads as scorer kind=value), summary.json (with held-out greedy accuracy).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from reasoner.errors import UserError
from reasoner.utils.progress import log, progress

ALGOS = ("oreo", "rft", "dpo")


# --------------------------------------------------------------------------- validation


def validate(cfg) -> None:
    """Config checks that need no model or data; all before anything is written."""
    from reasoner.offline.objectives import KL_ESTIMATORS, LEVELS

    a = cfg.algo
    checks = [
        (a.name in ALGOS, f"algo.name must be one of {', '.join(ALGOS)} for offline RL, got '{a.name}'"),
        (cfg.batch_size >= 1, f"batch_size must be >= 1 (got {cfg.batch_size})"),
        (cfg.epochs > 0, f"epochs must be > 0 (got {cfg.epochs})"),
        (cfg.steps >= 0, f"steps must be >= 0 (0: no cap; got {cfg.steps})"),
        (cfg.rounds >= 1, f"rounds must be >= 1 (got {cfg.rounds})"),
        (cfg.max_length >= 2, f"max_length must be >= 2 (got {cfg.max_length})"),
        (cfg.optim.lr > 0, f"optim.lr must be > 0 (got {cfg.optim.lr})"),
        (cfg.log_every >= 1, f"log_every must be >= 1 (got {cfg.log_every})"),
        (cfg.eval_every >= 0 and cfg.save_every >= 0 and cfg.eval_problems >= 0,
         "eval_every, save_every and eval_problems must be >= 0"),
        (not cfg.model.quantization or cfg.model.lora.enabled,
         f"model.quantization={cfg.model.quantization} trains only adapters: set model.lora.enabled=true"),
    ]
    if a.name == "oreo":
        checks += [
            (a.level in LEVELS, f"algo.level must be one of {', '.join(LEVELS)}, got '{a.level}'"),
            (a.kl_estimator in KL_ESTIMATORS, f"algo.kl_estimator must be one of {', '.join(KL_ESTIMATORS)} for oreo, got '{a.kl_estimator}'"),
            (a.oreo_beta > 0, f"algo.oreo_beta must be > 0 (got {a.oreo_beta})"),
            (a.kl_coef >= 0, f"algo.kl_coef must be >= 0 (got {a.kl_coef})"),
            (a.value_lr > 0, f"algo.value_lr must be > 0 (got {a.value_lr})"),
        ]
    if a.name == "dpo":
        checks.append((a.dpo_beta > 0, f"algo.dpo_beta must be > 0 (got {a.dpo_beta})"))
    for ok, message in checks:
        if not ok:
            raise UserError(f"config: {message}")
    if cfg.train_file is None and cfg.rounds == 1:
        log("note: no train_file: collecting with the starting policy first (selection=balanced)")
    for flag, module in (("tensorboard", "torch.utils.tensorboard"), ("wandb", "wandb")):
        if getattr(cfg, flag):
            try:
                __import__(module)
            except ImportError:
                raise UserError(f"config: {flag}=true needs the '{flag}' package (pip install {flag})") from None


def check_data(trajs, algo: str, path: str) -> None:
    """RFT needs a correct sample, DPO a problem with both a correct and an incorrect one."""
    if algo == "rft" and not any(t.reward >= 1.0 for t in trajs):
        raise UserError(f"{path}: no correct trajectories (reward 1) to fine-tune on (algo=rft)")
    if algo == "dpo":
        kinds: dict[str, set] = {}
        for t in trajs:
            kinds.setdefault(t.problem_id, set()).add(t.reward >= 1.0)
        if not any(len(k) == 2 for k in kinds.values()):
            raise UserError(f"{path}: no problem has both a correct and an incorrect trajectory to pair (algo=dpo)")


# --------------------------------------------------------------------------- logging sinks


class Sinks:
    """metrics.jsonl always; TensorBoard / W&B when asked."""

    def __init__(self, cfg, out_dir: Path, resume_step: int):
        from reasoner.utils.train import MetricsLog

        self.jsonl = MetricsLog(out_dir / "metrics.jsonl", resume_step=resume_step)
        self.tb = self.wandb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        if cfg.wandb:
            import wandb

            self.wandb = wandb.init(project="reasoner", dir=str(out_dir), name=out_dir.name, resume="allow")

    def write(self, rec: dict) -> None:
        self.jsonl.write(rec)
        scalars = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and k != "step"}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, rec["step"])
        if self.wandb is not None:
            self.wandb.log(scalars, step=rec["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


# --------------------------------------------------------------------------- one round


def evaluate(model, tokenizer, cfg, model_cfg) -> float:
    """Held-out greedy pass@1 (`decode.held_out`)."""
    from reasoner.stages.decode import greedy_accuracy, held_out

    return greedy_accuracy(model, tokenizer, held_out(cfg.data, cfg.eval_problems), model_cfg,
                           max_new_tokens=cfg.generation.max_new_tokens)


def total_steps(cfg, n_items: int) -> int:
    """ceil(epochs * steps per epoch), capped at `steps` when steps > 0."""
    from reasoner.offline.data import steps_per_epoch

    total = max(1, math.ceil(cfg.epochs * steps_per_epoch(n_items, cfg.batch_size)))
    return min(total, cfg.steps) if cfg.steps > 0 else total


def build_trainer(cfg, model_cfg, value_cfg, policy, tokenizer, seqs, total):
    """The algorithm's trainer with its reference (and value model) built from the starting policy."""
    from reasoner.models import load_reference, load_value_model
    from reasoner.offline.data import dpo_pairs
    from reasoner.offline.trainers import DPOTrainer, OREOTrainer, RFTTrainer

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    name = cfg.algo.name
    if name == "rft":
        return RFTTrainer(policy, seqs, pad_id, cfg, total)
    reference = load_reference(model_cfg, policy)
    if name == "dpo":
        return DPOTrainer(policy, reference, dpo_pairs(seqs), pad_id, cfg, total)
    value = load_value_model(value_cfg, policy)
    value.train()
    return OREOTrainer(policy, value, reference, seqs, pad_id, cfg, total)


def items_of(cfg, seqs) -> int:
    """How many items an epoch walks (correct samples for RFT, pairs for DPO)."""
    from reasoner.offline.data import dpo_pairs

    if cfg.algo.name == "rft":
        return sum(1 for s in seqs if s.reward >= 1.0)
    if cfg.algo.name == "dpo":
        return len(dpo_pairs(seqs))
    return len(seqs)


def train_round(cfg, out_dir: Path, model_cfg, value_cfg, trajs, separator: str, label: str) -> dict:
    """Train one round from `model_cfg`'s policy on `trajs`; returns the round's summary."""
    from reasoner.models import is_peft, load_policy, save_model
    from reasoner.offline.data import encode_trajectory, steps_per_epoch
    from reasoner.utils import checkpoint as ckpt
    from reasoner.utils.guard import RefusedStep, require_finite_model, stop_error
    from reasoner.utils.run import write_text_atomic
    from reasoner.utils.train import epoch_order

    torch.manual_seed(cfg.seed)
    policy, tokenizer = load_policy(model_cfg)
    seqs = [encode_trajectory(tokenizer, t, separator, cfg.max_length) for t in trajs]
    total = total_steps(cfg, items_of(cfg, seqs))
    trainer = build_trainer(cfg, model_cfg, value_cfg, policy, tokenizer, seqs, total)
    items, bs = trainer.items, cfg.batch_size
    per_epoch = steps_per_epoch(len(items), bs)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = out_dir / "checkpoints"
    step = 0
    existing = ckpt.list_checkpoints(ckpt_root) if cfg.resume else []
    if existing:
        state = ckpt.load_checkpoint(existing[-1], trainer.models)
        trainer.load_optim_state(state["optim"])
        step = state["step"]
        log(f"resumed from {existing[-1]} (step {step}/{total})")
    sinks = Sinks(cfg, out_dir, step)
    for m in trainer.models.values():
        m.train()
    name = f"train-rl {cfg.algo.name}" + (f" {label}" if label else "")
    log(f"{name}: {len(items)} items from {len(trajs)} trajectories, "
        f"{total} steps of {bs}, out={out_dir}")
    started, tokens = time.time(), 0
    with progress() as bar:
        task_id = bar.add_task(name, total=total, completed=step, info="")
        while step < total:
            epoch, offset = divmod(step, per_epoch)
            order = epoch_order(len(items), cfg.seed, epoch)
            batch = [items[i] for i in order[offset * bs:(offset + 1) * bs]]
            try:
                metrics = trainer.update(batch)
            except RefusedStep as err:
                raise stop_error(name, step + 1, err, ckpt_root) from None
            step += 1
            tokens += sum(len(s.input_ids) for b in batch for s in (b if isinstance(b, tuple) else (b,)))
            if step % cfg.log_every == 0 or step == total:
                rec = {"step": step, "epoch": round(step / per_epoch, 3),
                       **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()},
                       "tokens_per_s": round(tokens / max(1e-9, time.time() - started), 1)}
                if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                    rec["eval_accuracy"] = evaluate(policy, tokenizer, cfg, model_cfg)
                sinks.write(rec)
                bar.update(task_id, info=f"loss {metrics['loss']:.4f}")
            bar.update(task_id, completed=step)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                ckpt.save_checkpoint(ckpt_root, step, trainer.models, {"optim": trainer.optim_state()})
    sinks.close()
    policy.eval()
    require_finite_model(trainer.models, f"{name}: final model", ckpt_root)
    final_dir = save_model(policy, tokenizer, out_dir / "final", merge_lora=True)
    if is_peft(policy):
        save_model(policy, tokenizer, out_dir / "adapter")
    summary = {"round": label or None, "algo": cfg.algo.name, "steps": step, "items": len(items),
               "trajectories": len(trajs), "model_dir": str(final_dir), "wall_s": round(time.time() - started, 1)}
    if "value" in trainer.models:
        trainer.models["value"].eval()
        summary["value_dir"] = str(trainer.models["value"].save(out_dir / "value", tokenizer))
    if cfg.eval_problems:
        summary["eval_accuracy"] = evaluate(policy, tokenizer, cfg, model_cfg)
        summary["eval_problems"] = cfg.eval_problems
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(f"{name}: done in {summary['wall_s']} s, policy -> {final_dir}"
        + (f", held-out greedy accuracy {summary['eval_accuracy']:.4f}" if "eval_accuracy" in summary else ""))
    return summary


# --------------------------------------------------------------------------- rounds


def collect_round(cfg, model_cfg, out_dir: Path, k: int) -> Path:
    """Sample with the current policy (balanced selection) on cfg.data's train split."""
    from reasoner.config import CollectConfig, SelectionConfig
    from reasoner.stages import collect

    ccfg = CollectConfig(
        run_dir=str(out_dir),
        model=replace(model_cfg, lora=replace(model_cfg.lora, enabled=False)),
        data=replace(cfg.data, split="train"),
        generation=replace(cfg.generation, seed=cfg.generation.seed + k),
        selection=SelectionConfig(name="balanced"),
        seed=cfg.seed + k,
    )
    collect.run(ccfg)
    return out_dir / collect.TRAJECTORIES


def _copy_dir(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".tmp-{dst.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def run(cfg) -> dict:
    from reasoner.models import load_tokenizer
    from reasoner.offline.data import read_offline_trajectories
    from reasoner.prompts import bound_prompts
    from reasoner.tasks import get_task
    from reasoner.utils.run import prepare_run_dir, write_text_atomic

    validate(cfg)
    task = get_task(cfg.data.name)
    trajs = None
    if cfg.train_file is not None:
        trajs = bound_prompts(read_offline_trajectories(cfg.train_file), load_tokenizer(cfg.model), cfg.data)
        check_data(trajs, cfg.algo.name, cfg.train_file)
    run_dir = prepare_run_dir(cfg, "train-rl")
    model_cfg, value_cfg, rounds = cfg.model, cfg.model, []
    for k in range(1, cfg.rounds + 1):
        out_dir = run_dir if cfg.rounds == 1 else run_dir / f"round-{k}"
        label = f"round {k}/{cfg.rounds}" if cfg.rounds > 1 else ""
        done = out_dir / "summary.json"
        if cfg.resume and done.exists() and (out_dir / "final").is_dir():
            summary = json.loads(done.read_text(encoding="utf-8"))
            log(f"train-rl {label or cfg.algo.name}: already done ({done}), skipping")
        else:
            if k > 1 or trajs is None:
                data_path = collect_round(cfg, model_cfg, out_dir / "collect", k)
                trajs = read_offline_trajectories(str(data_path))
                check_data(trajs, cfg.algo.name, str(data_path))
            summary = train_round(cfg, out_dir, model_cfg, value_cfg, trajs, task.step_separator, label)
        rounds.append(summary)
        model_cfg = replace(cfg.model, name_or_path=summary["model_dir"])
        value_cfg = replace(cfg.model, name_or_path=summary.get("value_dir") or summary["model_dir"])
    if cfg.rounds == 1:
        return rounds[0]
    last = run_dir / f"round-{cfg.rounds}"
    _copy_dir(last / "final", run_dir / "final")
    if (last / "value").is_dir():
        _copy_dir(last / "value", run_dir / "value")
    summary = {"algo": cfg.algo.name, "rounds": rounds, "model_dir": str(run_dir / "final"),
               "eval_accuracy_per_round": [r.get("eval_accuracy") for r in rounds]}
    if (run_dir / "value").is_dir():
        summary["value_dir"] = str(run_dir / "value")
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
