"""Reward functions as TRL users write them: f(prompts, completions, **columns) -> list[float].

`reward.functions=[pkg.module:fn, my_rewards.py:brevity]` with `reward.weights=[1.0, 0.1]`: the
reward of a completion is the weighted sum of the functions' values (None counts 0, as in TRL),
each function's mean is logged as `reward/<name>`. Every function gets the batch's columns:
`answer` (the gold answer), `problem_id`, `completion_ids`, and the problem's own dataset fields
(Problem.meta: a jsonl record's extra fields, the gym's num_ops, ...), one value per completion.
`reasoner.rl.rewards:verifier` is the task's answer check as a named reward, and
`reasoner.rl.rewards:answered` a format reward (the completion commits to some answer).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass
from typing import Callable

from reasoner.errors import UserError

RESERVED = ("answer", "problem_id", "completion_ids")


def verifier(prompts, completions, answer, **columns) -> list[float]:
    """1.0 when a completion's final answer matches the gold answer, else 0.0. Under train-rl it
    is the run's own grading (the task's grader, answer style and time limit, computed once for
    the accuracy metric); called directly it checks with the generic task's (`data=jsonl`) rule."""
    from reasoner.tasks import get_task

    task = get_task("jsonl")
    return [1.0 if task.grade(c, a).correct else 0.0 for c, a in zip(completions, answer)]


def answered(prompts, completions, **columns) -> list[float]:
    """1.0 when a completion commits to a final answer at all, right or wrong: the format reward
    of R1-style recipes, for a model that rarely writes its answer where the grader looks. Under
    train-rl it is the run's own extraction; called directly, the generic task's (`data=jsonl`)."""
    from reasoner.tasks import get_task

    task = get_task("jsonl")
    return [0.0 if task.extract_answer(c) is None else 1.0 for c in completions]


@dataclass
class RewardFunction:
    """One configured reward function: its metric name, the function, its weight, where it was set."""

    name: str
    fn: Callable
    weight: float
    spec: str
    what: str  # the config key naming it, for messages: reward.function | reward.functions[i]

    def __call__(self, prompts: list[str], completions: list[str], columns: dict, verdicts: list[bool],
                 preds: list[str | None]) -> list[float]:
        if self.fn is verifier:
            return [1.0 if c else 0.0 for c in verdicts]
        if self.fn is answered:
            return [0.0 if p is None else 1.0 for p in preds]
        try:
            out = self.fn(prompts=list(prompts), completions=list(completions), **columns)
        except Exception as err:  # the user's code: one line naming it, not a traceback through ours
            raise UserError(f"{self.what} '{self.spec}' raised {type(err).__name__}: {_first_line(err)}") from None
        return self._values(out, len(completions))

    def _values(self, out, n: int) -> list[float]:
        try:
            values = list(out)
        except TypeError:
            raise UserError(f"{self.what} '{self.spec}': must return a list of floats, got {type(out).__name__}") from None
        if len(values) != n:
            raise UserError(f"{self.what} '{self.spec}': returned {len(values)} rewards for {n} completions")
        result = []
        for i, v in enumerate(values):
            if v is None:  # TRL: None means "not applicable" and counts as 0 in the sum
                result.append(0.0)
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise UserError(f"{self.what} '{self.spec}': reward {i} is not a number ({v!r})") from None
            if not math.isfinite(f):
                raise UserError(f"{self.what} '{self.spec}': reward {i} is {f}")
            result.append(f)
        return result


def reward_functions(reward_cfg) -> list[RewardFunction]:
    """The configured functions: reward.functions (+ reward.weights), or reward.kind=custom's
    single reward.function; [] when the verifier (or a PRM) alone gives the reward."""
    specs, what = list(reward_cfg.functions or []), "reward.functions[{i}]"
    if reward_cfg.function is not None:
        if reward_cfg.kind != "custom":
            raise UserError("config: reward.function is read with reward.kind=custom only; "
                            "for the TRL form write reward.functions=[pkg.module:fn]")
        if specs:
            raise UserError("config: give reward.functions=[...] or reward.function, not both")
        specs, what = [reward_cfg.function], "reward.function"
    if reward_cfg.kind == "custom" and not specs:
        raise UserError("config: reward.kind=custom needs reward.functions=[pkg.module:fn] (or reward.function)")
    if reward_cfg.kind == "prm" and specs:
        raise UserError("config: reward.kind=prm takes its reward from the PRM; drop reward.functions (or use kind=custom)")
    weights = list(reward_cfg.weights) if reward_cfg.weights is not None else [1.0] * len(specs)
    if len(weights) != len(specs):
        raise UserError(f"config: reward.weights has {len(weights)} entries for {len(specs)} reward.functions")
    out, names = [], set()
    for i, (spec, weight) in enumerate(zip(specs, weights)):
        key = what.format(i=i)
        fn = load_function(spec, key)
        name = getattr(fn, "__name__", None) or spec.rpartition(":")[2] or f"f{i}"
        name = name if name not in names else f"{name}_{i}"
        names.add(name)
        out.append(RewardFunction(name, fn, float(weight), spec, key))
    return out


def columns(problems, completion_ids: list[list[int]]) -> dict:
    """The columns every reward function gets, one value per completion (see the module doc)."""
    cols = {"answer": [p.answer for p in problems], "problem_id": [p.id for p in problems],
            "completion_ids": [list(c) for c in completion_ids]}
    keys = dict.fromkeys(k for p in problems for k in (p.meta or {}) if k not in RESERVED)
    for key in keys:
        cols[key] = [(p.meta or {}).get(key) for p in problems]
    return cols


def load_function(spec: str, what: str = "reward.function") -> Callable:
    """Import 'package.module:function' (or 'package.module.function', or 'path/to/file.py:function').

    The working directory is searched first for the module while it is imported, as Python does
    for a script, so a `myrewards.py` beside the user is found from the installed `reasoner`
    command too. Any error raised while importing it is one line naming the module.
    """
    if not spec or not isinstance(spec, str):
        raise UserError(f"config: {what} must be 'package.module:function'")
    mod_name, sep, attr = spec.partition(":")
    if not sep:
        mod_name, _, attr = spec.rpartition(".")
    if not mod_name or not attr:
        raise UserError(f"config: {what} '{spec}': expected 'package.module:function'")
    try:
        module = _import_user_module(mod_name, what)
    except UserError:
        raise
    except Exception as err:  # ImportError, or anything the module raises at import time
        raise UserError(f"config: {what} '{spec}': cannot import module '{mod_name}' "
                        f"({type(err).__name__}: {_first_line(err)})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"config: {what} '{spec}': module '{mod_name}' has no function '{attr}'")
    return fn


def _import_user_module(mod_name: str, what: str = "reward.function"):
    """A module by dotted name with the working directory first on sys.path, or a .py file by path."""
    import os
    import sys

    if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
        from pathlib import Path

        path = Path(mod_name).expanduser()
        if not path.is_file():
            raise UserError(f"config: {what}: no such file '{mod_name}'")
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


