"""Rollouts from step prefixes: the one place labelers meet a Generator and a grader.

Labelers (Math-Shepherd, OmegaPRM) only ask "give me k completions of this prefix, graded"; a
`RolloutFn` answers a whole batch of such requests with one `generate()` call, so rollouts from
many prefixes (and problems) share the backend's batching. Tests pass a fake RolloutFn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Callable, Hashable

__all__ = ["Rollout", "PrefixRequest", "RolloutFn", "prefix_text", "GeneratorRollouts", "derive_seed"]


@dataclass(frozen=True)
class Rollout:
    """One sampled continuation of a prefix, graded as a whole solution (prefix + continuation)."""

    text: str                    # the generated continuation only
    steps: tuple[str, ...]       # its steps (split with the collection's separator)
    correct: bool
    num_tokens: int
    pred_answer: str | None = None


@dataclass(frozen=True)
class PrefixRequest:
    """A prefix to roll out: the prompt as sent, the gold (the Problem, or its answer string: what
    Task.grade takes), and the steps written so far."""

    problem_id: Hashable
    prompt: str
    gold: object
    steps: tuple[str, ...]


RolloutFn = Callable[[list[PrefixRequest], int], list[list[Rollout]]]
"""rollout_fn(requests, k) -> k graded rollouts per request, in request order."""


def prefix_text(prompt: str, steps: tuple[str, ...] | list[str], sep: str) -> str:
    """The text the model continues: prompt, the steps so far, and a separator after the last one."""
    return prompt + "".join(s + sep for s in steps)


def derive_seed(*parts) -> int:
    """A 31-bit seed that is a pure function of its parts (so resumed runs draw the same samples)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


class GeneratorRollouts:
    """A RolloutFn over a Generator: one generate() call per batch of prefix requests.

    Every call draws with the next seed of a sequence fixed by `seed`, so the same sequence of
    calls gives the same rollouts. Counts rollouts and generated tokens for the run's statistics.
    """

    def __init__(self, generator, task, sep: str, params, seed: int, timeout: float = 5.0):
        self.generator, self.task, self.sep = generator, task, sep
        self.params, self.seed, self.timeout = params, seed, timeout
        self.calls = 0
        self.rollouts = 0
        self.tokens = 0

    def __call__(self, requests: list[PrefixRequest], k: int) -> list[list[Rollout]]:
        from reasoner.data import split_steps

        if not requests:
            return []
        params = replace(self.params, n=k, seed=derive_seed(self.seed, "rollouts", self.calls))
        self.calls += 1
        texts = [prefix_text(r.prompt, r.steps, self.sep) for r in requests]
        outputs = self.generator.generate(texts, params)
        results: list[list[Rollout]] = []
        for req, completions in zip(requests, outputs):
            done = "".join(s + self.sep for s in req.steps)
            batch = []
            for c in completions:
                pred, ok = self.task.grade(done + c.text, req.gold, self.timeout)
                batch.append(Rollout(c.text, tuple(split_steps(c.text, self.sep)), ok, len(c.token_ids), pred))
                self.tokens += len(c.token_ids)
            results.append(batch)
        self.rollouts += len(requests) * k
        return results
