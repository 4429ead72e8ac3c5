"""A mock policy and mock step scorers whose best path is known, for search tests.

The world: every solution has three lines. Lines 1 and 2 are "good k" (p = GOOD_P) or "bad k";
line 3 is "Answer: 42" after two good lines, otherwise "Answer: 7". So the most likely answer is
the wrong 7 (majority vote loses) while a scorer that rewards good lines finds 42. One character
is one token; a line's separator "\n" is one more token, EOS one more.
"""

from __future__ import annotations

import random

from reasoner.generation.base import Completion, SamplingParams

GOOD_P = 0.4
RIGHT, WRONG = "42", "7"


def lines_so_far(prompt: str) -> list[str]:
    """The response lines already written after the question line 'Q...'."""
    _, _, response = prompt.partition("\n")
    return response.split("\n")[:-1] if response else []


def next_line(done: list[str], rng: random.Random, greedy: bool) -> str:
    depth = len(done)
    if depth < 2:
        good = (not greedy) and rng.random() < GOOD_P
        return f"{'good' if good else 'bad'} {depth + 1}"
    return f"Answer: {RIGHT if all(l.startswith('good') for l in done[:2]) else WRONG}"


class MockPolicy:
    """Generator protocol over the world above; records every call for the tests."""

    def __init__(self, lines=next_line):
        self.calls: list[tuple[list[str], SamplingParams]] = []
        self.sequences = 0
        self.tokens = 0
        self.lines = lines

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        self.calls.append((list(prompts), params))
        rng = random.Random(params.seed)
        out = []
        for prompt in prompts:
            comps = []
            for _ in range(params.n):
                comps.append(self._one(prompt, params, rng))
            out.append(comps)
        self.sequences += sum(len(c) for c in out)
        self.tokens += sum(len(x.token_ids) for c in out for x in c)
        return out

    def _one(self, prompt: str, params: SamplingParams, rng) -> Completion:
        done = lines_so_far(prompt)
        text, budget = "", params.max_new_tokens
        while True:
            line = self.lines(done, rng, params.temperature == 0)
            if line is None:  # the policy stops: EOS
                return self._done(text, "stop", None, extra=1)
            if len(text) + len(line) > budget:
                return self._done((text + line)[:budget], "length", None)
            if "\n" in params.stop:
                return self._done(text + line, "stop", "\n", extra=1)
            text += line
            done = done + [line]
            if line.startswith("Answer:"):
                return self._done(text, "stop", None, extra=1)
            text += "\n"

    @staticmethod
    def _done(text: str, finish: str, stop: str | None, extra: int = 0) -> Completion:
        ids = [ord(c) for c in text] + [0] * extra
        return Completion(text, ids, [0.0] * len(ids), finish, stop)


class LineScorer:
    """Scores a good line 0.9, a bad one 0.02, the right answer 0.95, a wrong one 0.05."""

    def __init__(self):
        self.calls: list[int] = []

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        self.calls.append(len(prompts))
        return [[self.one(s) for s in solution] for solution in steps]

    @staticmethod
    def one(step: str) -> float:
        if step.startswith("good"):
            return 0.9
        if step.startswith("bad"):
            return 0.02
        return 0.95 if step.endswith(RIGHT) else 0.05


class ConstantScorer:
    """Every step scores the same: all candidates tie."""

    def __init__(self, value: float = 0.5):
        self.value = value

    def score(self, prompts, steps):
        return [[self.value] * len(s) for s in steps]
