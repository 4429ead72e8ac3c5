"""Online RL as a recipe (`reasoner train-rl algo=grpo|rloo|ppo|prime|rlep|...`).

Each step: draw prompts (a pure function of the step), sample a group per prompt through the
Generator protocol (RLEP appends pooled answers), reward them (verifier / PRM / reward
functions), lay the batch out with its old and reference log-probs (`UpdateInputs`), ask the
algorithm for advantages (`algos/online`), and run the clipped policy update (`rl.update`) with
the loss of the algorithm's importance level (`algos.POLICY_LOSSES`). Checkpoints hold the
policy and the algorithm's models, every optimiser, the scheduler, the rollout count and the
replay pool; the loop (`reasoner.train.loop`) resumes them exactly.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from reasoner.errors import UserError
from reasoner.dist import world_size
from reasoner.dist.context import env_world_size
from reasoner.evaluation import check_eval_split
from reasoner.train.recipe import Optim, RecipeBase, Step, device_of, pad_id

POOL = "pool.jsonl"


def validate(cfg, algorithm) -> None:
    """Every check of an online run that needs no model, before anything is loaded or written."""
    g = cfg.generation
    for key in ("steps", "prompts_per_step", "batch_size", "max_length"):
        if getattr(cfg, key) is None or getattr(cfg, key) < 1:
            raise UserError(f"config: {key} must be >= 1, got {getattr(cfg, key)}")
    if g.n < 1 or g.max_new_tokens < 1:
        raise UserError("config: generation.n and generation.max_new_tokens must be >= 1")
    if g.temperature <= 0:
        raise UserError(f"config: generation.temperature must be > 0 for RL sampling, got {g.temperature}")
    if cfg.eval_every is not None and cfg.eval_every < 0:
        raise UserError("config: eval_every must be >= 0")
    check_eval_split(cfg)
    algorithm.validate(cfg)
    extra = cfg.algo.replay if hasattr(cfg.algo, "replay") else 0
    if g.n + extra < 2:
        raise UserError(f"config: algo {cfg.algo.name} needs at least 2 samples per prompt (generation.n={g.n})")
    validate_sharding(cfg)


def validate_sharding(cfg, n: int | None = None) -> None:
    """Under N processes (default: as torchrun says) each rank samples and trains on
    prompts_per_step / N whole prompt groups; every rank must take the same number of optimiser steps."""
    n = env_world_size() if n is None else n
    if n <= 1:
        return
    if cfg.prompts_per_step % n:
        raise UserError(f"config: prompts_per_step={cfg.prompts_per_step} must be a multiple of the {n} processes "
                        "(each rank samples whole prompt groups)")
    if cfg.algo.minibatch_size is not None and cfg.algo.minibatch_size % n:
        raise UserError(f"config: algo.minibatch_size={cfg.algo.minibatch_size} must be a multiple of the {n} processes")
    if cfg.algo.name == "prime":
        raise UserError("config: algo=prime runs on one process only (its accuracy filter keeps different groups per rank)")
    if getattr(cfg.algo, "normalize_advantages", False):
        raise UserError("config: algo.normalize_advantages=true runs on one process only (it whitens one batch)")
    if getattr(cfg.algo, "dynamic_sampling", False):
        raise UserError(f"config: algo={cfg.algo.name} (dynamic sampling) runs on one process only: its ranks "
                        "would keep different numbers of groups")


def update_plan(cfg, algorithm):
    """The update's shape (rl.update.UpdatePlan) from the run's and the algorithm's config."""
    from reasoner.rl.update import UpdatePlan

    a = cfg.algo
    return UpdatePlan(  # a minibatch is global: each rank steps on its share of it
        epochs=algorithm.epochs, minibatch_size=a.minibatch_size and a.minibatch_size // world_size(), micro_batch=cfg.batch_size, eps_low=a.eps_low,
        eps_high=a.eps_high, dual_clip=a.dual_clip, aggregation=a.loss_aggregation,
        importance_level=algorithm.importance_level, beta=a.beta, kl_estimator=a.kl_estimator,
        max_len=cfg.generation.max_new_tokens, value_clip=getattr(a, "value_clip", 0.2),
        max_grad_norm=cfg.optim.max_grad_norm, temperature=cfg.generation.temperature,
        max_update_ratio=cfg.optim.max_update_ratio)


def correct_records(samples, rewards, fresh: list[int], step: int, algo: str) -> list[dict]:
    """The verified-correct fresh samples of step `step` (0-based) as Trajectory dicts (pool.jsonl)."""
    from reasoner.data import Trajectory

    out = []
    for k, i in enumerate(fresh):
        if rewards.correct[i]:
            s = samples[i]
            t = Trajectory(id=f"{s.problem.id}/rl{step}-{k}", problem_id=s.problem.id, prompt=s.prompt,
                           response=s.text, steps=rewards.steps[i], pred_answer=rewards.answers[i],
                           reward=1.0, meta={"step": step + 1, "algo": algo})
            out.append(t.to_dict())
    return out


def _mean(xs) -> float:
    xs = list(xs)
    return round(sum(xs) / len(xs), 6) if xs else 0.0


def _round(rec: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in rec.items()}


class OnlineRecipe(RecipeBase):
    name = "train-rl"
    headline = ("reward", "loss")

    def __init__(self, cfg, algorithm, model, tokenizer, problems, task, reward_model):
        self.cfg, self.algorithm, self.model, self.tokenizer = cfg, algorithm, model, tokenizer
        self.problems, self.task, self.reward_model = problems, task, reward_model
        self.total_steps = cfg.steps
        self.rollouts = 0
        self.seed_per_prompt = cfg.seed_per_prompt if cfg.seed_per_prompt is not None else env_world_size() > 1

    # ----------------------------------------------------------------- setup and state

    def setup(self, out_dir: Path) -> None:
        from reasoner.generation.factory import build_generator, local_model_dir
        from reasoner.models import load_reference

        cfg, algorithm = self.cfg, self.algorithm
        self.out_dir = Path(out_dir)
        self.device = device_of(self.model)
        shared = cfg.generation.backend == "vllm" and world_size() > 1  # one engine, on rank 0, for every rank

        def make():  # shared: in its own process (in rank 0's, vLLM makes process groups every rank must join)
            return build_generator(cfg.generation, self.model, self.tokenizer, model_dir=local_model_dir(cfg.model),
                                   vllm_defaults={"in_process": False} if shared else None)

        if shared:
            from reasoner.dist.shared_engine import RankZeroEngine

            self.generator = RankZeroEngine.build(make)
        else:
            self.generator = make()
        self.reference = load_reference(cfg.model, self.model) if algorithm.needs_reference() else None
        algorithm.setup(self)
        self.plan = update_plan(cfg, algorithm)
        rows = cfg.prompts_per_step * (cfg.generation.n + algorithm.group_extra)
        per_step = self.plan.epochs * math.ceil(rows / (self.plan.minibatch_size or rows))
        self.opt = Optim(self.model, "policy", cfg.optim.lr, cfg.optim, cfg.steps * per_step)
        self.model.train()

    def close(self) -> None:
        """Shut the generation engine down (vLLM: frees its memory; under the launcher its process)."""
        close = getattr(getattr(self, "generator", None), "close", None)
        if close is not None:
            close()

    def start(self, step: int) -> None:
        """The steps after the checkpoint run again and append their trajectories again: drop them."""
        from reasoner.dist import is_main
        from reasoner.utils.io import keep_jsonl

        if is_main():
            keep_jsonl(self.out_dir / POOL, lambda rec: isinstance(rec, dict) and (rec.get("meta") or {}).get("step", 0) <= step)

    def describe(self) -> str:
        c = self.cfg
        return (f"train-rl {c.algo.name}: {len(self.problems)} problems, {c.steps} steps x {c.prompts_per_step} prompts x "
                f"{c.generation.n} samples")

    def models(self) -> dict:
        return {"policy": self.model, **self.algorithm.models()}

    def state_dict(self) -> dict:
        return {**self.opt.state_dict(), "rollouts": self.rollouts, **self.algorithm.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)
        self.rollouts = state["rollouts"]
        self.algorithm.load_state_dict(state)

    # ----------------------------------------------------------------- one step

    def train_step(self, step: int) -> Step:
        """One rollout batch (this rank's prompt groups) and its update."""
        from reasoner import dist
        from reasoner.rl import rollouts as R
        from reasoner.utils.io import append_jsonl

        started = time.time()
        own_weights = hasattr(self.generator, "update_weights")  # vLLM: an engine with its own copy
        if step > 0 and own_weights:
            with dist.full_weights([self.model]):  # ZeRO-3: gathered to be sent whole
                self.generator.update_weights(self.model)  # push the trained weights
        with dist.full_weights([] if own_weights else [self.model]):  # the HF backend decodes with the model
            rounds, kept, rng = self.sample_rounds(step)
        gen_s = time.time() - started
        samples = [s for roll, _ in rounds for s in roll.samples]
        rewards = R.concat_rewards([rw for _, rw in rounds])
        fresh = [i for i, s in enumerate(samples) if s.fresh]
        self.rollouts += int(dist.all_sum(len(fresh)))
        correct = [r for part in dist.gather_objects(correct_records(samples, rewards, fresh, step, self.cfg.algo.name))
                   for r in part]
        metrics = {**self.rollout_metrics(samples, rewards, fresh), **self.algorithm.on_rollouts(samples, correct)}
        roll, train_rewards = rounds[0]
        if self.algorithm.dynamic_sampling:
            roll, train_rewards = R.select_groups(rounds, kept)
            metrics.update({"sampling_rounds": len(rounds), "kept_groups": len(kept)})
        if roll.sizes:
            metrics.update(self.update(roll, train_rewards, rng))
        else:
            metrics["skipped"] = 1  # dynamic sampling found no group with differing rewards
        metrics.update({"gen_s": round(gen_s, 3), "step_s": round(time.time() - started, 3), "lr": self.opt.lr})
        if correct and dist.is_main():
            append_jsonl(self.out_dir / POOL, correct)
        return Step(_round(metrics), sum(len(samples[i].completion_ids) for i in fresh))

    def rollout_metrics(self, samples, rewards, fresh: list[int]) -> dict:
        metrics = {
            "rollouts": self.rollouts,
            "reward": _mean([rewards.outcome[i] for i in fresh]),
            "accuracy": _mean([float(rewards.correct[i]) for i in fresh]),
            "response_len": _mean([len(samples[i].completion_ids) for i in fresh]),
            "truncated": _mean([float(samples[i].truncated) for i in fresh]),
        }
        for name in (rewards.parts[0] if rewards.parts else ()):
            metrics[f"reward/{name}"] = _mean([rewards.parts[i][name] for i in fresh])
        return metrics

    def sample_rounds(self, step: int) -> tuple[list, list[tuple[int, int]], torch.Generator]:
        """Generate and reward this step's groups: one round, or with dynamic sampling more rounds
        (fresh prompts each) until prompts_per_step groups with differing rewards are found.
        Returns [(rollouts, rewards)] per round, the (round, group) pairs to train on, and the
        last round's generator (it also orders the update's minibatches)."""
        from reasoner.dist import shard
        from reasoner.evaluation import sampling_params
        from reasoner.generation.base import sequence_seed
        from reasoner.prompts import build_prompt
        from reasoner.rl import rollouts as R

        cfg, algorithm = self.cfg, self.algorithm
        rounds, kept = [], []
        for r in range(cfg.algo.max_sampling_rounds if algorithm.dynamic_sampling else 1):
            everyone = R.step_problem_indices(len(self.problems), cfg.prompts_per_step, cfg.seed, step, r)
            problems = [self.problems[i] for i in shard(everyone)]
            prompts = [build_prompt(p.prompt, self.tokenizer, cfg.model.chat_template, cfg.model.system_prompt, cfg.data.name)
                       for p in problems]
            seed = R.step_seed(cfg.seed, cfg.generation.seed, step, r)
            rng = torch.Generator().manual_seed(seed)
            params = replace(sampling_params(cfg.generation), seed=seed)
            if self.seed_per_prompt:  # the seed of the prompt's slot in the global batch, whichever rank draws it
                params = replace(params, prompt_seeds=shard([sequence_seed(seed, j) for j in range(len(everyone))]))
            roll = R.collect(self.generator, self.tokenizer, problems, prompts, params,
                             pool=algorithm.pool, replay=algorithm.replay, rng=rng)
            rewards = self.reward_model([s.problem for s in roll.samples], [s.prompt for s in roll.samples],
                                        [s.text for s in roll.samples], [s.completion_ids for s in roll.samples])
            rounds.append((roll, rewards))
            groups = R.informative_groups(rewards.outcome, roll.sizes) if algorithm.dynamic_sampling else range(len(roll.sizes))
            kept += [(r, g) for g in groups][: cfg.prompts_per_step - len(kept)]
            if len(kept) >= cfg.prompts_per_step:
                break
        return rounds, kept, rng

    def update_inputs(self, roll, rewards) -> tuple:
        """(UpdateInputs, metrics) of a rewarded batch: layout, loss mask, old / reference log-probs."""
        from reasoner.algos.online.base import UpdateInputs
        from reasoner.rl.batch import build_batch
        from reasoner.rl.rewards import dense_rewards
        from reasoner.rl.update import no_grad_logprobs, no_grad_reference

        cfg, a, plan, samples = self.cfg, self.cfg.algo, self.plan, roll.samples
        batch = build_batch([s.prompt_ids for s in samples], [s.completion_ids for s in samples], pad_id(self.tokenizer),
                            cfg.max_length).to(self.device)
        mask = batch.response_mask.clone()
        if a.mask_truncated:
            mask[torch.tensor([s.truncated for s in samples], device=self.device)] = 0.0
        outcome = torch.tensor(rewards.outcome, dtype=torch.float32, device=self.device)
        kl_reward = a.beta != 0.0 and a.kl_estimator == "reward"
        old_logp = (no_grad_logprobs(self.model, batch, cfg.batch_size, plan.temperature)
                    if (plan.needs_old_pass(mask.size(0)) or kl_reward) else None)
        ref_logp = (no_grad_reference(self.reference, batch, cfg.batch_size, plan.temperature)
                    if a.beta != 0.0 and a.kl_estimator != "full" else None)
        metrics = {"kl": float(((old_logp - ref_logp) * mask).sum() / mask.sum().clamp(min=1))} if kl_reward else {}
        dense = (dense_rewards(self.tokenizer, samples, rewards, mask.size(1), self.device)
                 if rewards.step_rewards is not None else None)
        return UpdateInputs(batch, mask, outcome, list(roll.sizes), list(rewards.correct), old_logp, ref_logp, dense,
                            kl_reward, cfg.batch_size), metrics

    def update(self, roll, rewards, rng) -> dict:
        """Advantages from the algorithm, then the clipped policy update (+ its critic)."""
        from reasoner.rl.update import policy_update

        inputs, extra = self.update_inputs(roll, rewards)
        adv = self.algorithm.advantages(inputs)
        extra.update(adv.metrics)
        if adv.values is None:
            return extra
        x = adv.inputs
        metrics = policy_update(self.model, self.opt.optimizer, self.opt.scheduler, x.batch, adv.values, x.mask, self.plan,
                                rng, old_logp=x.old_logp, ref_logp=x.ref_logp, reference=self.reference, **adv.critic)
        metrics.update(extra)
        return metrics

    # ----------------------------------------------------------------- eval and the end

    def evaluate(self) -> float:
        from reasoner.evaluation import held_out_accuracy

        return held_out_accuracy(self.model, self.tokenizer, self.cfg.data, self.cfg.model, self.cfg.eval_problems,
                                 max_new_tokens=self.cfg.generation.max_new_tokens, split=self.cfg.eval_split)

    def save_final(self, out_dir: Path, last_eval: float | None) -> dict:
        from reasoner.models import is_peft, save_model

        self.model.eval()
        final_dir = save_model(self.model, self.tokenizer, out_dir / "final", merge_lora=True)
        if is_peft(self.model):
            save_model(self.model, self.tokenizer, out_dir / "adapter")
        summary = {"algo": self.cfg.algo.name, "steps": self.total_steps, "rollouts": self.rollouts,
                   "final_eval_accuracy": last_eval, "model_dir": str(final_dir)}
        summary.update(self.algorithm.save_final(out_dir, self))
        return summary
