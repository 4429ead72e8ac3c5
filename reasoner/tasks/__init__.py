"""Built-in problem sources by name: TASKS["arith" | "gsm8k" | "math500" | "jsonl"].

A Task bundles what every stage needs to know about a source: how to load its problems from a
DataConfig, how its answers are extracted and graded, what separates its steps, and how a gold
solution is written as a response for SFT.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from reasoner.data import Problem, split_steps as _split
from reasoner.errors import UserError
from reasoner.grading import DEFAULT_TIMEOUT, Graded, extract_answer, get_grader, grade_answer, grade_response
from reasoner.tasks import arith, generic, gsm8k, math500


@dataclass(frozen=True)
class Task:
    name: str
    grader: str                   # key of reasoner.grading.GRADERS
    answer_style: str             # style for reasoner.grading.extract_answer
    step_separator: str           # "\n" for line-based tasks, "\n\n" for MATH
    loader: Callable[[Any], list[Problem]]
    formatter: Callable[[list[str], str], str]
    step_checker: Callable[[Problem, list[str]], list[bool]] | None = None   # ground truth (gym only)
    fallback_last_number: bool = False  # take the last number when no marked answer is found
    # The DataConfig options this task reads; config.load rejects a user override of any other
    # data.* option, with option_hints[option] saying why it does not apply / what to use instead.
    data_options: frozenset[str] = frozenset()
    option_hints: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def extract_answer(self, response: str, fallback: bool | None = None) -> str | None:
        """The final answer of a response, the same way in every stage (decode, collect, RL)."""
        use_fallback = self.fallback_last_number if fallback is None else fallback
        return extract_answer(response, self.answer_style, fallback_last_number=use_fallback)

    def grade(self, response: str, gold: str, timeout: float | None = DEFAULT_TIMEOUT) -> Graded:
        """(answer, correct) of a whole response: this task's extraction (with its fallback rule)
        and its grader under the time limit. Every stage grades through here."""
        return grade_response(response, gold, self.grader, self.answer_style, self.fallback_last_number, timeout)

    def grade_answer(self, pred: str | None, gold: str, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
        """Whether an already extracted answer (a search's chosen one, a vote) matches the gold."""
        return grade_answer(pred, gold, self.grader, timeout)

    def derive(self, grader: str | None = None, fallback_last_number: bool | None = None) -> "Task":
        """This task with another grader (decode's `grader=`) and/or fallback rule
        (`data.answer_fallback`); None keeps the task's own."""
        task = self
        if grader is not None:
            get_grader(grader)  # an unknown name fails here, before any model is loaded
            task = replace(task, grader=grader)
        if fallback_last_number is not None:
            task = replace(task, fallback_last_number=bool(fallback_last_number))
        return task

    def load_problems(self, cfg) -> list[Problem]:
        """Problems of cfg.split, the first cfg.limit of them when a limit is set."""
        limit = getattr(cfg, "limit", None)
        if limit is not None and limit < 0:
            raise UserError(f"data.limit must be >= 0 (got {limit})")
        problems = self.loader(cfg)
        return problems if limit is None else problems[:limit]

    def format_solution(self, steps: list[str] | Problem, answer: str | None = None) -> str:
        """Gold response text for SFT, from (steps, answer) or from a Problem's own solution."""
        if isinstance(steps, Problem):
            problem = steps
            if not problem.solution_steps:
                raise UserError(f"problem {problem.id}: no gold solution steps to format")
            steps, answer = problem.solution_steps, problem.answer
        if answer is None:
            raise TypeError("format_solution(steps, answer) needs the answer")
        return self.formatter(list(steps), answer)

    def split_steps(self, response: str) -> list[str]:
        """A response's steps under this task's separator."""
        return _split(response, self.step_separator)

    def check_steps(self, problem: Problem, steps: list[str]) -> list[bool]:
        """Ground-truth step labels, for tasks that have them (the arith gym)."""
        if self.step_checker is None:
            raise UserError(f"task '{self.name}' has no ground-truth step checker")
        return self.step_checker(problem, steps)


# DataConfig options every task reads: name (the task), split and limit (Task.load_problems),
# answer_fallback (answer extraction), max_prompt_tokens / on_long_prompt (prompts.bound_problems).
COMMON_OPTIONS = frozenset({"name", "split", "limit", "answer_fallback", "max_prompt_tokens", "on_long_prompt"})
# The arith gym generates its problems from these knobs.
GYM_OPTIONS = COMMON_OPTIONS | {"num_problems", "seed", "min_ops", "max_ops", "max_operand", "ops",
                                "corrupt_fraction", "misconception_rate", "misconception_ops"}
# File / directory / hub sources read their records from `path` with these field names.
FILE_OPTIONS = COMMON_OPTIONS | {"path", "prompt_field", "answer_field", "id_field"}

_GYM_ONLY = "an arith gym generator setting"
FILE_HINTS = {"num_problems": "it reads every record; use data.limit",
              **{k: _GYM_ONLY for k in GYM_OPTIONS - COMMON_OPTIONS - {"num_problems"}}}
GYM_HINTS = {k: "the gym generates its problems; data=FILE.jsonl reads a file" for k in FILE_OPTIONS - COMMON_OPTIONS}

TASKS: dict[str, Task] = {
    "arith": Task("arith", grader="exact", answer_style="answer", step_separator="\n",
                  loader=arith.load_problems, formatter=arith.format_solution,
                  step_checker=arith.check_steps, data_options=GYM_OPTIONS, option_hints=GYM_HINTS),
    "gsm8k": Task("gsm8k", grader="numeric", answer_style="auto", step_separator="\n",
                  loader=gsm8k.load_problems, formatter=gsm8k.format_solution,
                  fallback_last_number=True,  # lm-eval's "flexible extract": small models rarely mark answers
                  data_options=FILE_OPTIONS, option_hints=FILE_HINTS),
    "math500": Task("math500", grader="math", answer_style="auto", step_separator="\n\n",
                    loader=math500.load_problems, formatter=math500.format_solution,
                    data_options=FILE_OPTIONS, option_hints=FILE_HINTS),
    "jsonl": Task("jsonl", grader="math", answer_style="auto", step_separator="\n",
                  loader=generic.load_problems, formatter=generic.format_solution,
                  data_options=FILE_OPTIONS, option_hints=FILE_HINTS),
}


def get_task(name: str) -> Task:
    """The task registered under `name` (data.name in the config)."""
    if name not in TASKS:
        raise UserError(f"data '{name}' is not a known task (choose from {', '.join(TASKS)})")
    return TASKS[name]
