"""`reasoner train-rl algo=grpo|rloo|ppo|prime|rlep`: online RL on self-generated rollouts.

Each step: draw prompts (a pure function of the step), sample a group per prompt through the
Generator protocol, reward them (verifier / PRM / custom), compute advantages for the chosen
algorithm (ALGORITHMS.md §5) and run the clipped policy update. Checkpoints resume exactly
(weights, optimisers, scheduler, RNG, data position, replay pool); a NaN/inf loss stops the run
and leaves the last good checkpoint in place.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from reasoner.errors import UserError
from reasoner.utils.progress import log, progress

ALGOS = ("grpo", "rloo", "ppo", "prime", "rlep")


def validate(cfg) -> None:
    """Every config check that needs no model, before anything is loaded or written."""
    from reasoner.algos import AGGREGATIONS

    a, g = cfg.algo, cfg.generation
    if a.name not in ALGOS:
        raise UserError(f"config: algo.name must be one of {', '.join(ALGOS)} for online RL, got '{a.name}'")
    for key in ("steps", "prompts_per_step", "batch_size", "max_length"):
        if getattr(cfg, key) is None or getattr(cfg, key) < 1:
            raise UserError(f"config: {key} must be >= 1, got {getattr(cfg, key)}")
    if g.n < 1 or g.max_new_tokens < 1:
        raise UserError("config: generation.n and generation.max_new_tokens must be >= 1")
    if g.temperature <= 0:
        raise UserError(f"config: generation.temperature must be > 0 for RL sampling, got {g.temperature}")
    group = g.n + (a.replay if a.name == "rlep" else 0)
    if group < 2:
        raise UserError(f"config: algo {a.name} needs at least 2 samples per prompt (generation.n={g.n})")
    if a.loss_aggregation not in AGGREGATIONS:
        raise UserError(f"config: algo.loss_aggregation must be one of {', '.join(AGGREGATIONS)}, got '{a.loss_aggregation}'")
    if a.importance_level not in ("token", "sequence"):
        raise UserError(f"config: algo.importance_level must be token or sequence, got '{a.importance_level}'")
    if a.scale_rewards not in ("group", "batch", "none"):
        raise UserError(f"config: algo.scale_rewards must be group, batch or none, got '{a.scale_rewards}'")
    if a.kl_estimator not in ("k3", "full", "reward"):
        raise UserError(f"config: algo.kl_estimator must be k3, full or reward, got '{a.kl_estimator}'")
    if a.importance_level == "sequence" and a.beta != 0 and a.kl_estimator != "reward":
        raise UserError("config: algo.importance_level=sequence takes its KL as a reward penalty: set algo.kl_estimator=reward")
    if a.eps_low < 0 or a.eps_high < 0 or (a.dual_clip is not None and a.dual_clip <= 1):
        raise UserError("config: algo.eps_low/eps_high must be >= 0 and algo.dual_clip > 1 (or null)")
    if a.dynamic_sampling and a.name not in ("grpo", "rloo", "rlep"):
        raise UserError(f"config: algo.dynamic_sampling is for group algorithms (grpo, rloo, rlep), not {a.name}")
    if a.max_sampling_rounds < 1:
        raise UserError(f"config: algo.max_sampling_rounds must be >= 1, got {a.max_sampling_rounds}")
    if a.num_iterations < 1 or a.ppo_epochs < 1 or (a.minibatch_size is not None and a.minibatch_size < 1):
        raise UserError("config: algo.num_iterations, algo.ppo_epochs and algo.minibatch_size must be >= 1")
    if a.name == "prime":
        if len(a.accuracy_filter) != 2 or not 0 <= a.accuracy_filter[0] <= a.accuracy_filter[1] <= 1:
            raise UserError(f"config: algo.accuracy_filter must be [low, high] within [0, 1], got {list(a.accuracy_filter)}")
        if cfg.reward.kind == "prm" and cfg.reward.prm_mode == "dense":
            raise UserError("config: algo=prime makes its own dense rewards (implicit PRM); use reward.prm_mode=final")
    if a.name == "rlep":
        if not a.pool_file and not a.pool_grow:
            raise UserError("config: algo=rlep needs algo.pool_file (verified-correct trajectories from `reasoner collect` or an earlier run's pool.jsonl) or algo.pool_grow=true")
        if a.replay < 0:
            raise UserError(f"config: algo.replay must be >= 0, got {a.replay}")
    if cfg.eval_every is not None and cfg.eval_every < 0:
        raise UserError("config: eval_every must be >= 0")


class Trainer:
    """Models, optimisers and state of one online run; `step()` does one rollout + update."""

    def __init__(self, cfg, run_dir: Path, model, tokenizer, problems, task, reward_model, pool):
        from reasoner.generation.factory import build_generator, local_model_dir
        from reasoner.models import is_peft, load_reference, load_value_model
        from reasoner.rl.update import UpdatePlan
        from reasoner.utils.guard import StepGuard
        from reasoner.utils.train import build_optimizer, build_scheduler

        self.cfg, self.run_dir, self.model, self.tok = cfg, run_dir, model, tokenizer
        self.problems, self.task, self.reward_model, self.pool = problems, task, reward_model, pool
        a = cfg.algo
        self.algo = a.name
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.generator = build_generator(cfg.generation, model, tokenizer, model_dir=local_model_dir(cfg.model))
        need_ref = a.beta != 0.0 or a.name == "prime"
        self.reference = load_reference(cfg.model, model) if need_ref else None
        self.critic = self.critic_opt = None
        if a.name == "ppo":
            self.critic = load_value_model(cfg.model, model).train()
            self.critic_opt = build_optimizer(self.critic.parameters(), a.critic_lr, cfg.optim.weight_decay, cfg.optim.betas)
        self.prm = self.prm_opt = self.prm_ref = self.prm_guard = None
        if a.name == "prime":
            self.prm = copy.deepcopy(model)
            if not is_peft(self.prm):
                self.prm.requires_grad_(True)
            self.prm.train()
            self.prm_ref = load_reference(cfg.model, self.prm) if is_peft(self.prm) else self.reference
            self.prm_opt = build_optimizer(self.prm.parameters(), a.prm_lr, cfg.optim.weight_decay, cfg.optim.betas)
            self.prm_guard = StepGuard.for_config(self.prm_opt, "implicit PRM", cfg.optim)
        epochs = a.ppo_epochs if a.name == "ppo" else a.num_iterations
        self.plan = UpdatePlan(
            epochs=epochs, minibatch_size=a.minibatch_size, micro_batch=cfg.batch_size, eps_low=a.eps_low,
            eps_high=a.eps_high, dual_clip=a.dual_clip, aggregation=a.loss_aggregation,
            importance_level=a.importance_level if a.name == "rloo" else "token", beta=a.beta,
            kl_estimator=a.kl_estimator, max_len=cfg.generation.max_new_tokens, value_clip=a.value_clip,
            max_grad_norm=cfg.optim.max_grad_norm, temperature=cfg.generation.temperature,
            max_update_ratio=cfg.optim.max_update_ratio)
        rows = cfg.prompts_per_step * (cfg.generation.n + (a.replay if a.name == "rlep" else 0))
        per_step = epochs * math.ceil(rows / (a.minibatch_size or rows))
        self.optimizer = build_optimizer(model.parameters(), cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim.schedule, cfg.optim.warmup_steps, cfg.steps * per_step)
        self.step_no = 0
        self.rollouts = 0
        self.model.train()

    # ----------------------------------------------------------------- state

    def models(self) -> dict:
        out = {"policy": self.model}
        if self.critic is not None:
            out["critic"] = self.critic
        if self.prm is not None:
            out["prm"] = self.prm
        return out

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "rollouts": self.rollouts}
        if self.critic_opt is not None:
            state["critic_optimizer"] = self.critic_opt.state_dict()
        if self.prm_opt is not None:
            state["prm_optimizer"] = self.prm_opt.state_dict()
        if self.pool is not None:
            state["pool"] = self.pool.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rollouts = state["rollouts"]
        self.step_no = state["step"]
        if self.critic_opt is not None:
            self.critic_opt.load_state_dict(state["critic_optimizer"])
        if self.prm_opt is not None:
            self.prm_opt.load_state_dict(state["prm_optimizer"])
        if self.pool is not None and "pool" in state:
            self.pool.load_state_dict(state["pool"])

    # ------------------------------------------------------------------ step

    def step(self) -> tuple[dict, list[dict]]:
        """One rollout batch and its update; returns (metrics, verified-correct trajectory dicts)."""
        from reasoner.rl import rollouts as R

        a = self.cfg.algo
        started = time.time()
        if self.step_no > 0 and hasattr(self.generator, "update_weights"):
            self.generator.update_weights(self.model)  # vLLM: push the trained weights
        rounds, kept, rng = self._sample_rounds()
        gen_s = time.time() - started
        samples = [s for roll, _ in rounds for s in roll.samples]
        rewards = R.concat_rewards([rw for _, rw in rounds])
        fresh = [i for i, s in enumerate(samples) if s.fresh]
        self.rollouts += len(fresh)
        correct_rows = self._correct_records(samples, rewards, fresh)
        if self.pool is not None and a.pool_grow:
            for rec in correct_rows:
                self.pool.add(rec["problem_id"], rec["response"])
        roll, train_rewards = R.select_groups(rounds, kept) if a.dynamic_sampling else rounds[0]

        metrics = {
            "rollouts": self.rollouts,
            "reward": _mean([rewards.outcome[i] for i in fresh]),
            "accuracy": _mean([float(rewards.correct[i]) for i in fresh]),
            "response_len": _mean([len(samples[i].completion_ids) for i in fresh]),
            "truncated": _mean([float(samples[i].truncated) for i in fresh]),
        }
        if self.algo == "rlep":
            replayed = [i for i, s in enumerate(samples) if not s.fresh]
            metrics.update({"replayed": len(replayed), "pool_size": len(self.pool)})
        if a.dynamic_sampling:
            metrics.update({"sampling_rounds": len(rounds), "kept_groups": len(kept)})
        if roll.sizes:
            metrics.update(self._update(roll, train_rewards, rng))
        else:
            metrics["skipped"] = 1  # dynamic sampling found no group with differing rewards
        gen_tokens = sum(len(samples[i].completion_ids) for i in fresh)
        wall = time.time() - started
        metrics.update({"gen_s": round(gen_s, 3), "step_s": round(wall, 3), "tokens_per_s": round(gen_tokens / max(wall, 1e-9), 1),
                        "lr": self.scheduler.get_last_lr()[0]})
        self.step_no += 1
        return metrics, correct_rows

    def _sample_rounds(self) -> tuple[list, list[tuple[int, int]], torch.Generator]:
        """Generate and reward this step's groups: one round, or with dynamic sampling more rounds
        (fresh prompts each) until prompts_per_step groups with differing rewards are found.
        Returns [(rollouts, rewards)] per round, the (round, group) pairs to train on, and the
        last round's generator (it also orders the update's minibatches)."""
        from reasoner.prompts import build_prompt
        from reasoner.rl import rollouts as R
        from reasoner.stages.decode import sampling_params

        cfg, a = self.cfg, self.cfg.algo
        rounds, kept = [], []
        for r in range(a.max_sampling_rounds if a.dynamic_sampling else 1):
            idx = R.step_problem_indices(len(self.problems), cfg.prompts_per_step, cfg.seed, self.step_no, r)
            problems = [self.problems[i] for i in idx]
            prompts = [build_prompt(p.prompt, self.tok, cfg.model.chat_template, cfg.model.system_prompt, cfg.data.name) for p in problems]
            seed = R.step_seed(cfg.seed, cfg.generation.seed, self.step_no, r)
            rng = torch.Generator().manual_seed(seed)
            roll = R.collect(self.generator, self.tok, problems, prompts, replace(sampling_params(cfg.generation), seed=seed),
                             pool=self.pool if self.algo == "rlep" else None, replay=a.replay, rng=rng)
            rewards = self.reward_model([s.problem for s in roll.samples], [s.prompt for s in roll.samples],
                                        [s.text for s in roll.samples], [s.completion_ids for s in roll.samples])
            rounds.append((roll, rewards))
            groups = R.informative_groups(rewards.outcome, roll.sizes) if a.dynamic_sampling else range(len(roll.sizes))
            kept += [(r, g) for g in groups][: cfg.prompts_per_step - len(kept)]
            if len(kept) >= cfg.prompts_per_step:
                break
        return rounds, kept, rng

    def _correct_records(self, samples, rewards, fresh) -> list[dict]:
        from reasoner.data import Trajectory

        out = []
        for k, i in enumerate(fresh):
            if rewards.correct[i]:
                s = samples[i]
                t = Trajectory(id=f"{s.problem.id}/rl{self.step_no}-{k}", problem_id=s.problem.id, prompt=s.prompt,
                               response=s.text, steps=rewards.steps[i], pred_answer=rewards.answers[i],
                               reward=1.0, meta={"step": self.step_no + 1, "algo": self.algo})
                out.append(t.to_dict())
        return out

    def _update(self, roll, rewards, rng) -> dict:
        from reasoner.algos import kl_penalized_rewards, normalize
        from reasoner.algos.groups import process_advantages, ragged_group_advantages
        from reasoner.algos.masked import masked_whiten
        from reasoner.rl.batch import build_batch
        from reasoner.rl.update import no_grad_logprobs, no_grad_reference, no_grad_values, policy_update

        cfg, a, plan = self.cfg, self.cfg.algo, self.plan
        samples, sizes = roll.samples, list(roll.sizes)
        batch = build_batch([s.prompt_ids for s in samples], [s.completion_ids for s in samples], self.pad_id, cfg.max_length).to(self.device)
        mask = batch.response_mask.clone()
        if a.mask_truncated:
            trunc = torch.tensor([s.truncated for s in samples], device=self.device)
            mask[trunc] = 0.0
        outcome = torch.tensor(rewards.outcome, dtype=torch.float32, device=self.device)
        B, T = mask.shape
        micro = cfg.batch_size
        extra: dict = {}
        kl_reward = a.beta != 0.0 and a.kl_estimator == "reward"
        old_logp = no_grad_logprobs(self.model, batch, micro, plan.temperature) if (plan.needs_old_pass(B) or kl_reward) else None
        ref_logp = (no_grad_reference(self.reference, batch, micro, plan.temperature)
                    if a.beta != 0.0 and a.kl_estimator != "full" else None)
        if kl_reward:
            sampled = old_logp
            extra["kl"] = float(((sampled - ref_logp) * mask).sum() / mask.sum().clamp(min=1))
        dense = self._dense_rewards(samples, rewards, T) if rewards.step_rewards is not None else None

        critic_args = {}
        if self.algo in ("grpo", "rlep", "rloo"):
            r = kl_penalized_rewards(outcome, old_logp, ref_logp, mask, a.beta) if kl_reward else outcome
            est = "rloo" if self.algo == "rloo" else "grpo"
            adv = ragged_group_advantages(r, sizes, est, a.scale_rewards)
            if self.algo == "rloo" and a.normalize_advantages:
                adv = normalize(adv)
            if dense is not None:
                adv = adv.unsqueeze(1) + process_advantages(dense[0], dense[1], sizes)
        elif self.algo == "ppo":
            from reasoner.algos import gae

            token_r = torch.zeros_like(mask)
            last = (mask.sum(1) - 1).clamp(min=0).long()
            has = mask.sum(1) > 0
            token_r[torch.arange(B, device=self.device)[has], last[has]] = outcome[has]
            if dense is not None:
                token_r = token_r + dense[0]
            if kl_reward:
                token_r = token_r - a.beta * (old_logp - ref_logp) * mask
            old_values = no_grad_values(self.critic, batch, micro)
            adv, returns = gae(token_r, old_values, mask, a.gamma, a.lam)
            adv = masked_whiten(adv, mask)
            critic_args = {"critic": self.critic, "critic_optimizer": self.critic_opt, "old_values": old_values, "returns": returns}
            extra["value_mean"] = float((old_values * mask).sum() / mask.sum().clamp(min=1))
        else:  # prime
            keep = self._prime_filter(rewards, sizes)
            extra["kept_groups"] = len(keep)
            if not keep:
                extra["skipped"] = 1
                return extra
            rows = torch.cat([torch.arange(sum(sizes[:g]), sum(sizes[:g + 1])) for g in keep]).to(self.device)
            batch, mask, outcome = batch.rows(rows), mask[rows], outcome[rows]
            sizes = [sizes[g] for g in keep]
            old_logp = old_logp[rows] if old_logp is not None else None
            ref_logp = ref_logp[rows] if ref_logp is not None else None
            B = len(rows)
            process, prm_metrics = self._prime_process_rewards(batch, mask, outcome)
            extra.update(prm_metrics)
            adv = self._prime_advantages(outcome, process, mask, sizes)
        metrics = policy_update(self.model, self.optimizer, self.scheduler, batch, adv, mask, plan, rng,
                                old_logp=old_logp, ref_logp=ref_logp, reference=self.reference, **critic_args)
        metrics.update(extra)
        return metrics

    def _dense_rewards(self, samples, rewards, T) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-step PRM rewards placed on each step's last token: (rewards [B, T], step-end mask [B, T])."""
        from reasoner.rl.rewards import step_end_tokens

        r = torch.zeros(len(samples), T, device=self.device)
        m = torch.zeros(len(samples), T, device=self.device)
        for i, s in enumerate(samples):
            ids = s.completion_ids[:T]
            if not ids:
                continue
            ends = step_end_tokens(self.tok, ids, s.text, rewards.steps[i])
            for e, v in zip(ends, rewards.step_rewards[i]):
                r[i, min(e, T - 1)] += v
                m[i, min(e, T - 1)] = 1.0
        return r, m

    def _prime_filter(self, rewards, sizes) -> list[int]:
        lo, hi = self.cfg.algo.accuracy_filter
        keep, start = [], 0
        for g, s in enumerate(sizes):
            acc = sum(rewards.correct[start:start + s]) / s
            if lo - 1e-9 <= acc <= hi + 1e-9:
                keep.append(g)
            start += s
        return keep

    def _prime_process_rewards(self, batch, mask, outcome) -> tuple[torch.Tensor, dict]:
        """Update the implicit PRM on verifier outcomes (BCE), then read its token rewards
        r_t = beta * (log pi_phi - log pi_ref) for the policy's advantages. The PRM scores the
        rollouts as fixed data (like DPO), so its log-probs stay at temperature 1."""
        from reasoner.prm.losses import implicit_loss
        from reasoner.rl.batch import token_logprobs
        from reasoner.rl.update import no_grad_logprobs, no_grad_reference
        from reasoner.utils.guard import check_loss

        a, micro = self.cfg.algo, self.cfg.batch_size
        B = batch.input_ids.size(0)
        ref = no_grad_reference(self.prm_ref, batch, micro)
        self.prm_opt.zero_grad(set_to_none=True)
        loss_sum, acc_sum = 0.0, 0.0
        for i in range(0, B, micro):
            sl = slice(i, i + micro)
            logp = token_logprobs(self.prm, batch.rows(sl))[0]
            loss, met = implicit_loss(logp, ref[sl], mask[sl], outcome[sl], a.prm_beta)
            check_loss("implicit PRM loss", loss)
            n = logp.size(0)
            (loss * n / B).backward()
            loss_sum += float(loss.detach()) * n
            acc_sum += met["outcome_acc"] * n
        self.prm_guard.step()
        logp = no_grad_logprobs(self.prm, batch, micro)
        process = a.prm_beta * (logp - ref) * mask
        return process, {"prm_loss": loss_sum / B, "prm_acc": acc_sum / B}

    def _prime_advantages(self, outcome, process, mask, sizes) -> torch.Tensor:
        from reasoner.algos import prime_advantages

        return prime_advantages(outcome, process, mask, sizes[0], gamma=self.cfg.algo.gamma, whiten=True)

    # ------------------------------------------------------------------ eval

    def evaluate(self) -> float:
        from reasoner.stages.decode import greedy_accuracy, held_out

        return greedy_accuracy(self.model, self.tok, held_out(self.cfg.data, self.cfg.eval_problems), self.cfg.model,
                               max_new_tokens=self.cfg.generation.max_new_tokens)


def _mean(xs) -> float:
    xs = list(xs)
    return round(sum(xs) / len(xs), 6) if xs else 0.0


def _round(rec: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in rec.items()}


def run(cfg) -> Path:
    from reasoner.models import load_policy, load_tokenizer, save_model
    from reasoner.prompts import bound_problems
    from reasoner.rl.pool import ReplayPool
    from reasoner.rl.rewards import RewardModel
    from reasoner.rl.sinks import MetricSinks
    from reasoner.tasks import get_task
    from reasoner.utils import checkpoint as ckpt
    from reasoner.utils.guard import RefusedStep, require_finite_model, stop_error
    from reasoner.utils.io import append_jsonl, keep_jsonl
    from reasoner.utils.run import prepare_run_dir, write_text_atomic

    validate(cfg)
    task = get_task(cfg.data.name).derive(fallback_last_number=cfg.data.answer_fallback)
    problems = task.load_problems(cfg.data)
    if not problems:
        raise UserError(f"data '{cfg.data.name}': no training problems")
    problems = bound_problems(problems, load_tokenizer(cfg.model), cfg.model, cfg.data)  # before the model loads
    reward_model = RewardModel(cfg.reward, task)
    pool = None
    if cfg.algo.name == "rlep":
        pool = ReplayPool.from_file(cfg.algo.pool_file) if cfg.algo.pool_file else ReplayPool()
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_policy(cfg.model)
    problems = bound_problems(problems, tokenizer, cfg.model, cfg.data, cfg.generation.max_new_tokens, model)
    run_dir = prepare_run_dir(cfg, "train-rl")
    trainer = Trainer(cfg, run_dir, model, tokenizer, problems, task, reward_model, pool)

    ckpt_root = run_dir / "checkpoints"
    existing = ckpt.list_checkpoints(ckpt_root) if cfg.resume else []
    if existing:
        trainer.load_state_dict(ckpt.load_checkpoint(existing[-1], trainer.models()))
        log(f"resumed from {existing[-1]} (step {trainer.step_no}/{cfg.steps})")
    sinks = MetricSinks(run_dir, trainer.step_no, cfg.tensorboard, cfg.wandb)
    pool_path = run_dir / "pool.jsonl"
    resumed_step = trainer.step_no  # steps after it are redone, and append their trajectories again
    keep_jsonl(pool_path, lambda rec: isinstance(rec, dict) and (rec.get("meta") or {}).get("step", 0) <= resumed_step)
    log(f"train-rl {cfg.algo.name}: {len(problems)} problems, {cfg.steps} steps x {cfg.prompts_per_step} prompts x "
        f"{cfg.generation.n} samples, run_dir={run_dir}")
    started = time.time()
    last_eval = None
    with progress() as bar:
        task_id = bar.add_task(f"train-rl {cfg.algo.name}", total=cfg.steps, completed=trainer.step_no, info="")
        while trainer.step_no < cfg.steps:
            try:
                metrics, correct = trainer.step()
            except RefusedStep as err:
                raise stop_error("train-rl", trainer.step_no + 1, err, ckpt_root) from None
            step = trainer.step_no
            if correct:
                append_jsonl(pool_path, correct)
            rec = {"step": step, **metrics}
            if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                rec["eval_accuracy"] = last_eval = trainer.evaluate()
            if step % max(1, cfg.log_every) == 0 or "eval_accuracy" in rec or step == cfg.steps:
                sinks.write(_round(rec))
            bar.update(task_id, completed=step, info=f"reward {metrics['reward']:.3f}  {metrics['tokens_per_s']:.0f} tok/s")
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
                ckpt.save_checkpoint(ckpt_root, step, trainer.models(), trainer.state_dict())
    sinks.close()
    model.eval()
    final_dir = run_dir / "final"
    require_finite_model(trainer.models(), "train-rl: final model", ckpt_root)
    save_model(model, tokenizer, final_dir, merge_lora=True)
    if getattr(model, "peft_config", None):
        save_model(model, tokenizer, run_dir / "adapter")
    summary = {"algo": cfg.algo.name, "steps": trainer.step_no, "rollouts": trainer.rollouts,
               "final_eval_accuracy": last_eval, "wall_s": round(time.time() - started, 1), "model_dir": str(final_dir)}
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(f"train-rl done: {trainer.step_no} steps, {trainer.rollouts} rollouts, model saved to {final_dir}")
    return final_dir
