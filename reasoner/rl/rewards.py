"""Rewards of a rollout batch: verifier outcome (default), a PRM's scores (as the final reward
or as dense per-step rewards), or reward functions with TRL's signature f(prompts, completions,
**columns), weighted and summed (`reward.functions` / `reward.weights`, rl/reward_functions.py).

The verifier always runs, so accuracy is logged whatever the reward is; it is also a named
reward function, `reasoner.rl.rewards:verifier`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from reasoner.errors import UserError
from reasoner.rl.reward_functions import answered, columns, load_function, reward_functions, verifier  # noqa: F401

KINDS = ("verifier", "prm", "custom")
PRM_MODES = ("final", "dense")


@dataclass
class Rewards:
    outcome: list[float]  # the sequence reward each sample is trained on (verifier: the task's score in [0, 1])
    correct: list[bool]  # the verifier's verdict (score >= the task's pass_score)
    steps: list[list[str]]  # the task's steps of each response
    step_rewards: list[list[float]] | None = None  # dense PRM rewards, one per step
    answers: list[str | None] | None = None  # the answer the verifier graded (task.grade's pred)
    parts: list[dict[str, float]] | None = None  # each reward function's value ({name: value}), with reward.functions

    def take(self, rows) -> "Rewards":
        """The rewards of the given sample rows, in that order."""
        rows = list(rows)
        return Rewards(**{f.name: None if getattr(self, f.name) is None else [getattr(self, f.name)[i] for i in rows]
                          for f in fields(self)})

    @staticmethod
    def concat(parts: list["Rewards"]) -> "Rewards":
        """One Rewards over several parts' samples, in order (an optional field survives only
        when every part has it)."""
        def joined(name):
            cols = [getattr(p, name) for p in parts]
            return None if any(c is None for c in cols) else [x for c in cols for x in c]

        return Rewards(**{f.name: joined(f.name) for f in fields(Rewards)})


class RewardModel:
    """Turns (problems, prompts, responses) into Rewards according to config.RewardConfig."""

    def __init__(self, reward_cfg, task, timeout: float = 5.0):
        if reward_cfg.kind not in KINDS:
            raise UserError(f"config: reward.kind must be one of {', '.join(KINDS)}, got '{reward_cfg.kind}'")
        if reward_cfg.prm_mode not in PRM_MODES:
            raise UserError(f"config: reward.prm_mode must be one of {', '.join(PRM_MODES)}, got '{reward_cfg.prm_mode}'")
        self.cfg, self.task, self.timeout = reward_cfg, task, timeout
        self.functions = reward_functions(reward_cfg)
        self.scorer = None
        if reward_cfg.kind == "prm":
            from reasoner.scoring import load_scorer

            if reward_cfg.scorer.kind == "none":
                raise UserError("config: reward.kind=prm needs reward.scorer.kind (prm|implicit|value|orm) and reward.scorer.path")
            self.scorer = load_scorer(reward_cfg.scorer)

    @property
    def dense(self) -> bool:
        return self.cfg.kind == "prm" and self.cfg.prm_mode == "dense"

    def __call__(self, problems, prompts: list[str], responses: list[str], completion_ids: list[list[int]]) -> Rewards:
        graded = [self.task.score(r, p, self.timeout) for p, r in zip(problems, responses)]
        correct = [g.correct for g in graded]
        preds = [g.pred for g in graded]
        steps = [self.task.split_steps(r) for r in responses]
        outcome = [g.score for g in graded]  # 1.0 / 0.0, or the task's own partial credit (reasoning-gym)
        step_rewards = parts = None
        if self.cfg.kind == "prm":
            from reasoner.scoring import aggregate

            scores = self.scorer.score(prompts, [s if s else [""] for s in steps])
            if self.dense:
                step_rewards = [list(map(float, sc))[:len(s)] for sc, s in zip(scores, steps)]
            else:
                outcome = [float(aggregate(list(sc), self.cfg.scorer.aggregate)) for sc in scores]
        elif self.functions:
            cols = columns(problems, completion_ids)
            values = {f.name: f(prompts, responses, cols, correct, preds) for f in self.functions}
            outcome = [sum(f.weight * values[f.name][i] for f in self.functions) for i in range(len(responses))]
            parts = [{name: v[i] for name, v in values.items()} for i in range(len(responses))]
        return Rewards(outcome, correct, steps, step_rewards, preds, parts)


def step_end_tokens(tokenizer, token_ids: list[int], text: str, steps: list[str]) -> list[int]:
    """Index of the token that ends each step of `text` (the last token overlapping the step's last char)."""
    ends, pos = [], 0
    for s in steps:
        at = text.find(s, pos)
        at = pos if at < 0 else at
        pos = at + len(s)
        ends.append(pos)
    cum, total = [], 0
    for t in token_ids:
        total += len(tokenizer.decode([t], skip_special_tokens=True))
        cum.append(total)
    out = []
    for e in ends:
        idx = next((i for i, c in enumerate(cum) if c >= e), len(token_ids) - 1)
        out.append(max(0, min(idx, len(token_ids) - 1)))
    return out


def dense_rewards(tokenizer, samples, rewards: Rewards, T: int, device) -> tuple:
    """Per-step PRM rewards placed on each step's last token: (rewards [B, T], step-end mask [B, T])."""
    import torch

    r = torch.zeros(len(samples), T, device=device)
    m = torch.zeros(len(samples), T, device=device)
    for i, s in enumerate(samples):
        ids = s.completion_ids[:T]
        if not ids:
            continue
        ends = step_end_tokens(tokenizer, ids, s.text, rewards.steps[i])
        for e, v in zip(ends, rewards.step_rewards[i]):
            r[i, min(e, T - 1)] += v
            m[i, min(e, T - 1)] = 1.0
    return r, m
