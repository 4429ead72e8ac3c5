"""MATH-500: competition problems with LaTeX answers, graded by math-verify.

Rows have problem, solution, answer, subject, level, unique_id. Problem: prompt = problem,
answer = answer, steps = the solution's paragraphs (split on blank lines), id = unique_id. The
dataset has only a test split, so the hub is always asked for "test".
"""

from __future__ import annotations

from reasoner.data import Problem, Where, iter_rows
from reasoner.errors import DataError
from reasoner.tasks.generic import answer_text, check_unique, id_text, prompt_text, row_field

__all__ = ["DEFAULT_HUB", "load_problems", "format_solution", "solution_steps"]

DEFAULT_HUB = "HuggingFaceH4/MATH-500"
STEP_SEPARATOR = "\n\n"


def solution_steps(solution: str) -> list[str]:
    """Paragraphs of a worked solution (MATH's natural step unit)."""
    return [s.strip() for s in solution.split(STEP_SEPARATOR) if s.strip()]


def load_problems(cfg) -> list[Problem]:
    """MATH-500 from cfg.path (file, directory, hub name) or the hub."""
    path = cfg.path or DEFAULT_HUB
    split = "test" if path == DEFAULT_HUB else cfg.split
    prompt_f = cfg.prompt_field or "problem"
    answer_f = cfg.answer_field or "answer"
    id_f = cfg.id_field or "unique_id"
    problems, where = [], []
    for index, (src, line, row) in enumerate(iter_rows(path, split)):
        prompt = prompt_text(row, prompt_f, src, line)
        answer = answer_text(row_field(row, answer_f, src, line), src, line, answer_f)
        pid = (id_text(row_field(row, id_f, src, line), src, line, id_f)
               if (id_f in row or cfg.id_field) else f"math500-{index}")
        solution = row.get("solution")
        if solution is not None and not isinstance(solution, str):
            raise DataError(src, line, "solution", f"expected a string, got {type(solution).__name__}")
        meta = {k: row[k] for k in ("subject", "level") if k in row}
        problems.append(Problem(id=pid, prompt=prompt, answer=answer, source="math500",
                                solution_steps=solution_steps(solution) if solution else None, meta=meta,
                                where=Where(src, line, prompt_f)))
        where.append((src, line))
    check_unique(problems, where, id_f)
    return problems


def format_solution(steps: list[str], answer: str) -> str:
    """Paragraphs separated by blank lines; a boxed final answer is added when none is there."""
    text = STEP_SEPARATOR.join(s.strip() for s in steps if s.strip())
    if "\\boxed" not in text:
        text = (text + STEP_SEPARATOR if text else "") + f"The final answer is $\\boxed{{{answer}}}$."
    return text
