"""What every search method shares: its result record, the task view it needs, budget accounting.

Budget is counted per problem in generations (sequences returned by `Generator.generate`: a
full sample, or one step of a step-level search) and in generated tokens, by routing every
generate() call through `Budget`, so no method can spend without it being counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from reasoner.generation.base import Completion, SamplingParams


@dataclass
class SearchResult:
    answer: str | None  # chosen final answer (None when the chosen response has none)
    response: str  # chosen full response
    candidates: list[dict]  # every finished candidate {response, answer, score, finished}
    generations: int  # budget spent: sequences generated (samples or steps)
    generated_tokens: int  # budget spent: tokens generated


@dataclass(frozen=True)
class SearchTask:
    """The slice of a task a search method needs: step boundaries, answers, answer equivalence.

    `answer(response)` is the answer the response is graded on: the task's extraction with its
    fallback rule (reasoner.tasks.Task.extract_answer), so search=majority at n=1 grades a
    response as search=sample does. `committed(text)` asks only for a *marked* answer: a partial
    path is finished once it states one, not once it mentions a number.
    `equal(a, b)` decides whether two extracted answers are the same (the task's grader, so
    "0.5" and "1/2" vote together under math grading); None: normalized string equality.
    """

    step_separator: str = "\n"
    answer_style: str = "auto"
    equal: Callable[[str, str], bool] | None = None
    fallback_last_number: bool = False

    @classmethod
    def from_task(cls, task, timeout: float = 5.0) -> "SearchTask":
        """From a reasoner.tasks.Task (derive it first for another grader or fallback rule)."""
        return cls(task.step_separator, task.answer_style, lambda a, b: task.grade_answer(a, b, timeout),
                   task.fallback_last_number)

    def answer(self, response: str) -> str | None:
        from reasoner.grading import extract_answer

        return extract_answer(response, self.answer_style, fallback_last_number=self.fallback_last_number)

    def committed(self, text: str) -> bool:
        """Whether the text states an answer in the task's style (no last-number fallback)."""
        from reasoner.grading import extract_answer

        return extract_answer(text, self.answer_style) is not None

    def steps(self, response: str) -> list[str]:
        from reasoner.data import split_steps

        return split_steps(response, self.step_separator)

    def same(self, a: str, b: str) -> bool:
        from reasoner.grading import normalize_answer

        if normalize_answer(a) == normalize_answer(b):
            return True
        return bool(self.equal(a, b)) if self.equal is not None else False


@dataclass
class Budget:
    """Counts generations and generated tokens per problem (owner index) across generate() calls.

    Every call gets its own seed (seed + call number) so repeated step calls of one search do
    not replay the same random stream.
    """

    generator: object
    num_problems: int
    seed: int | None = None
    generations: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    calls: int = 0

    def __post_init__(self):
        self.generations = [0] * self.num_problems
        self.tokens = [0] * self.num_problems

    def generate(self, prompts: list[str], owners: list[int], params: SamplingParams) -> list[list[Completion]]:
        """generator.generate(prompts, params), charging each prompt's completions to its owner."""
        if not prompts:
            return []
        seed = None if self.seed is None else self.seed + self.calls
        self.calls += 1
        out = self.generator.generate(list(prompts), replace(params, seed=seed))
        if len(out) != len(prompts):
            raise RuntimeError(f"generator returned {len(out)} results for {len(prompts)} prompts")
        for owner, comps in zip(owners, out):
            self.generations[owner] += len(comps)
            self.tokens[owner] += sum(len(c.token_ids) for c in comps)
        return out

    def request(self, requests: list[tuple[int, str, int]], params: SamplingParams) -> list[list[Completion]]:
        """Completions for (owner, prompt, count) requests, in ONE generate() call.

        Equal counts go out as n=count, so a prompt's samples share one prefill; mixed counts
        as the prompt repeated count times with n=1 (the HF backend merges identical prompts
        into one prefill, vLLM's prefix cache does the same).
        """
        live = [i for i, (_, _, count) in enumerate(requests) if count > 0]
        out: list[list[Completion]] = [[] for _ in requests]
        counts = {requests[i][2] for i in live}
        if len(counts) == 1:
            n = counts.pop()
            got = self.generate([requests[i][1] for i in live], [requests[i][0] for i in live], replace(params, n=n))
            for i, comps in zip(live, got):
                out[i] = comps
        elif live:
            rows = [i for i in live for _ in range(requests[i][2])]
            got = self.generate([requests[i][1] for i in rows], [requests[i][0] for i in rows], replace(params, n=1))
            for i, comps in zip(rows, got):
                out[i] = out[i] + comps
        return out

    def spent(self, owner: int) -> tuple[int, int]:
        return self.generations[owner], self.tokens[owner]
