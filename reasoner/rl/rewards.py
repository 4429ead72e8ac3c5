"""Rewards of a rollout batch: verifier outcome (default), a PRM's scores (as the final reward
or as dense per-step rewards), or a custom function with TRL's signature f(prompts, completions, **cols).

The verifier always runs, so accuracy is logged whatever the reward is.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass, fields
from typing import Callable

from reasoner.errors import UserError

KINDS = ("verifier", "prm", "custom")
PRM_MODES = ("final", "dense")


@dataclass
class Rewards:
    outcome: list[float]  # the sequence reward each sample is trained on
    correct: list[bool]  # the verifier's verdict
    steps: list[list[str]]  # the task's steps of each response
    step_rewards: list[list[float]] | None = None  # dense PRM rewards, one per step
    answers: list[str | None] | None = None  # the answer the verifier graded (task.grade's pred)

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


def load_function(spec: str) -> Callable:
    """Import 'package.module:function' (or 'package.module.function', or 'path/to/file.py:function').

    The working directory is searched first for the module while it is imported, as Python does
    for a script, so a `myrewards.py` beside the user is found from the installed `reasoner`
    command too. Any error raised while importing it is one line naming the module.
    """
    if not spec or not isinstance(spec, str):
        raise UserError("config: reward.function must be 'package.module:function' for reward.kind=custom")
    mod_name, sep, attr = spec.partition(":")
    if not sep:
        mod_name, _, attr = spec.rpartition(".")
    if not mod_name or not attr:
        raise UserError(f"config: reward.function '{spec}': expected 'package.module:function'")
    try:
        module = _import_user_module(mod_name)
    except UserError:
        raise
    except Exception as err:  # ImportError, or anything the module raises at import time
        raise UserError(f"config: reward.function '{spec}': cannot import module '{mod_name}' "
                        f"({type(err).__name__}: {_first_line(err)})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"config: reward.function '{spec}': module '{mod_name}' has no function '{attr}'")
    return fn


def _import_user_module(mod_name: str):
    """A module by dotted name with the working directory first on sys.path, or a .py file by path."""
    import os
    import sys

    if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
        from pathlib import Path

        path = Path(mod_name).expanduser()
        if not path.is_file():
            raise UserError(f"config: reward.function: no such file '{mod_name}'")
        name = f"reasoner_user_reward_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(mod_name)
    finally:
        if added:
            sys.path.remove(cwd)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else "no message"


class RewardModel:
    """Turns (problems, prompts, responses) into Rewards according to config.RewardConfig."""

    def __init__(self, reward_cfg, task, timeout: float = 5.0):
        if reward_cfg.kind not in KINDS:
            raise UserError(f"config: reward.kind must be one of {', '.join(KINDS)}, got '{reward_cfg.kind}'")
        if reward_cfg.prm_mode not in PRM_MODES:
            raise UserError(f"config: reward.prm_mode must be one of {', '.join(PRM_MODES)}, got '{reward_cfg.prm_mode}'")
        self.cfg, self.task, self.timeout = reward_cfg, task, timeout
        self.fn = load_function(reward_cfg.function) if reward_cfg.kind == "custom" else None
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
        graded = [self.task.grade(r, p.answer, self.timeout) for p, r in zip(problems, responses)]
        correct = [g.correct for g in graded]
        steps = [self.task.split_steps(r) for r in responses]
        outcome = [1.0 if c else 0.0 for c in correct]
        step_rewards = None
        if self.cfg.kind == "prm":
            from reasoner.scoring import aggregate

            scores = self.scorer.score(prompts, [s if s else [""] for s in steps])
            if self.dense:
                step_rewards = [list(map(float, sc))[:len(s)] for sc, s in zip(scores, steps)]
            else:
                outcome = [float(aggregate(list(sc), self.cfg.scorer.aggregate)) for sc in scores]
        elif self.cfg.kind == "custom":
            outcome = self._custom(problems, prompts, responses, completion_ids)
        return Rewards(outcome, correct, steps, step_rewards, [g.pred for g in graded])

    def _custom(self, problems, prompts, responses, completion_ids) -> list[float]:
        try:
            out = self.fn(prompts=list(prompts), completions=list(responses), answer=[p.answer for p in problems],
                          problem_id=[p.id for p in problems], completion_ids=[list(c) for c in completion_ids])
        except Exception as err:  # the user's code: one line naming it, not a traceback through ours
            raise UserError(f"reward.function '{self.cfg.function}' raised {type(err).__name__}: {_first_line(err)}") from None
        try:
            values = list(out)
        except TypeError:
            raise UserError(f"reward.function '{self.cfg.function}': must return a list of floats, got {type(out).__name__}") from None
        if len(values) != len(responses):
            raise UserError(f"reward.function '{self.cfg.function}': returned {len(values)} rewards for {len(responses)} completions")
        result = []
        for i, v in enumerate(values):
            if v is None:  # TRL: None means "not applicable" and counts as 0 in the sum
                result.append(0.0)
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise UserError(f"reward.function '{self.cfg.function}': reward {i} is not a number ({v!r})") from None
            if not math.isfinite(f):
                raise UserError(f"reward.function '{self.cfg.function}': reward {i} is {f}")
            result.append(f)
        return result


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
