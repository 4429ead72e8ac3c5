"""Built-in problem sources by name: TASKS["arith" | "gsm8k" | "math500" | "jsonl" | "reasoning_gym"].

A Task bundles what every stage needs to know about a source: how to load its problems from a
DataConfig, how its answers are extracted and graded (a grader comparing with the gold string, or
the source's own scorer of (answer, Problem) for partial credit), what separates its steps, and
how a gold solution is written as a response for SFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, NamedTuple

from reasoner.data import Problem, split_steps as _split
from reasoner.errors import UserError
from reasoner.grading import DEFAULT_TIMEOUT, Graded, extract_answer, get_grader, grade_answer, run_with_timeout
from reasoner.tasks import arith, generic, gsm8k, math500, reasoning_gym


class Scored(NamedTuple):
    """A graded response with its score: the answer extracted (None: none found), the verdict
    (score >= the task's pass_score) and the score in [0, 1] (1.0 / 0.0 for a grader)."""

    pred: str | None
    correct: bool
    score: float


@dataclass(frozen=True)
class Task:
    name: str
    grader: str                   # key of reasoner.grading.GRADERS
    answer_style: str             # style for reasoner.grading.extract_answer
    step_separator: str           # "\n" for line-based tasks, "\n\n" for MATH
    loader: Callable[[Any], list[Problem]]
    formatter: Callable[[list[str], str], str] | None   # None: the source has no gold solutions
    step_checker: Callable[[Problem, list[str]], list[bool]] | None = None   # ground truth (gym only)
    fallback_last_number: bool = False  # take the last number when no marked answer is found
    # The DataConfig options this task reads; config.load rejects a user override of any other
    # data.* option, with option_hints[option] saying why it does not apply / what to use instead.
    data_options: frozenset[str] = frozenset()
    option_hints: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    # The source's own scorer (pred, problem) -> [0, 1], e.g. reasoning-gym's score_answer; used
    # whenever the gold is a Problem (a plain gold string is compared with `grader`).
    scorer: Callable[[str, Problem], float] | None = None
    pass_score: float = 1.0       # a scored answer is correct at or above this
    config_checker: Callable[[Any], None] | None = None   # checks the DataConfig when the config loads

    def extract_answer(self, response: str, fallback: bool | None = None) -> str | None:
        """The final answer of a response, the same way in every stage (decode, collect, RL)."""
        use_fallback = self.fallback_last_number if fallback is None else fallback
        return extract_answer(response, self.answer_style, fallback_last_number=use_fallback)

    def score(self, response: str, gold: str | Problem, timeout: float | None = DEFAULT_TIMEOUT) -> Scored:
        """(answer, correct, score) of a whole response: this task's extraction (with its fallback
        rule), then `score_answer`. Every stage grades through here (or `grade`, its 2-tuple);
        pass the Problem, not its answer string, so a task's own scorer sees the whole problem."""
        pred = self.extract_answer(response)
        value = self.score_answer(pred, gold, timeout)
        return Scored(pred, value >= self.pass_score, value)

    def grade(self, response: str, gold: str | Problem, timeout: float | None = DEFAULT_TIMEOUT) -> Graded:
        """(answer, correct) of a whole response (`score` without the score)."""
        pred, correct, _ = self.score(response, gold, timeout)
        return Graded(pred, correct)

    def score_answer(self, pred: str | None, gold: str | Problem, timeout: float | None = DEFAULT_TIMEOUT) -> float:
        """The score in [0, 1] of an extracted answer: the task's scorer against a Problem, under
        the time limit (a timeout, an exception or a non-finite value scores 0), else 1.0 / 0.0
        from the grader against the gold string. No answer scores 0."""
        if pred is None:
            return 0.0
        if self.scorer is None or not isinstance(gold, Problem):
            gold_text = gold.answer if isinstance(gold, Problem) else gold
            return 1.0 if grade_answer(pred, gold_text, self.grader, timeout) else 0.0
        try:
            value = float(run_with_timeout(self.scorer, pred, gold, timeout=timeout, default=0.0))
        except UserError:
            raise
        except Exception:  # a scorer bug on odd input is a wrong answer, not a crash
            return 0.0
        return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0

    def grade_answer(self, pred: str | None, gold: str | Problem, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
        """Whether an already extracted answer (a search's chosen one, a vote) is correct."""
        return self.score_answer(pred, gold, timeout) >= self.pass_score

    def check_data(self, data_cfg) -> None:
        """Source-specific checks of the DataConfig (a reasoning-gym task name), at config load."""
        if self.config_checker is not None:
            self.config_checker(data_cfg)

    def derive(self, grader: str | None = None, fallback_last_number: bool | None = None) -> "Task":
        """This task with another grader (decode's `grader=`, which replaces a scorer too) and/or
        fallback rule (`data.answer_fallback`); None keeps the task's own."""
        task = self
        if grader is not None:
            get_grader(grader)  # an unknown name fails here, before any model is loaded
            task = replace(task, grader=grader, scorer=None)
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

    @property
    def has_gold_solutions(self) -> bool:
        return self.formatter is not None

    def require_gold_solutions(self) -> None:
        """Stop with one line (before any model loads) when SFT on gold solutions cannot work."""
        if self.formatter is None:
            raise UserError(f"data={self.name} has no gold solutions to fine-tune on: collect correct samples "
                            f"(reasoner collect data={self.name} ...) and train on them with "
                            "train_file=RUN/trajectories.jsonl")

    def format_solution(self, steps: list[str] | Problem, answer: str | None = None) -> str:
        """Gold response text for SFT, from (steps, answer) or from a Problem's own solution."""
        self.require_gold_solutions()
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

# reasoning-gym: which generator(s) (task, weights), their own settings (task_config), how many, which seeds.
RGYM_OPTIONS = COMMON_OPTIONS | {"num_problems", "seed", "task", "task_config", "weights"}

_GYM_ONLY = "an arith gym generator setting"
_RGYM_ONLY = {k: "a data=reasoning_gym setting" for k in RGYM_OPTIONS - GYM_OPTIONS}
FILE_HINTS = {"num_problems": "it reads every record; use data.limit",
              **{k: _GYM_ONLY for k in GYM_OPTIONS - COMMON_OPTIONS - {"num_problems"}}, **_RGYM_ONLY}
GYM_HINTS = {**{k: "the gym generates its problems; data=FILE.jsonl reads a file" for k in FILE_OPTIONS - COMMON_OPTIONS},
             **_RGYM_ONLY}
RGYM_HINTS = {**{k: "reasoning-gym generates its problems; data=FILE.jsonl reads a file" for k in FILE_OPTIONS - COMMON_OPTIONS},
              **{k: f"{_GYM_ONLY}; a reasoning-gym task takes its own in data.task_config"
                 for k in GYM_OPTIONS - RGYM_OPTIONS}}

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
    "reasoning_gym": Task("reasoning_gym", grader="exact", answer_style="tag", step_separator="\n",
                          loader=reasoning_gym.load_problems, formatter=None, scorer=reasoning_gym.score,
                          config_checker=reasoning_gym.check_config,
                          data_options=RGYM_OPTIONS, option_hints=RGYM_HINTS),
}


def get_task(name: str) -> Task:
    """The task registered under `name` (data.name in the config)."""
    if name not in TASKS:
        raise UserError(f"data '{name}' is not a known task (choose from {', '.join(TASKS)})")
    return TASKS[name]
