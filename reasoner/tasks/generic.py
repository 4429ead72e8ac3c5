"""The `jsonl` task: problems from any file / directory / hub dataset with configurable fields.

Defaults: prompt_field "prompt", answer_field "answer", id_field "id" (ids are generated from the
file name and row number when the row has no id and no id_field was set). Optional
"solution_steps" (a list of strings) become the gold steps; other scalar fields go to meta.
Also holds the row helpers the gsm8k and math500 loaders share.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reasoner.data import Problem, Where, iter_rows
from reasoner.errors import DataError, UserError


def row_field(row: dict, name: str, src: str, line: int) -> Any:
    """row[name], or a DataError naming file, line and field."""
    if name not in row:
        raise DataError(src, line, name, "missing")
    return row[name]


def prompt_text(row: dict, name: str, src: str, line: int) -> str:
    """A non-empty string prompt."""
    value = row_field(row, name, src, line)
    if not isinstance(value, str):
        raise DataError(src, line, name, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(src, line, name, "is empty")
    return value


def answer_text(value: Any, src: str, line: int, name: str) -> str:
    """Gold answers are strings; numbers are converted (3.0 -> "3", 0.5 -> "0.5")."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(src, line, name, "is empty (a problem needs a gold answer)")
        return value.strip()
    if isinstance(value, bool) or value is None or not isinstance(value, (int, float)):
        raise DataError(src, line, name, f"expected a string or number, got {value!r}"[:200])
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError(src, line, name, f"expected a finite number, got {value!r}")
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)


def id_text(value: Any, src: str, line: int, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise DataError(src, line, name, f"expected a non-empty string or integer id, got {value!r}"[:200])
    return str(value)


def check_unique(problems: list[Problem], lines: list[tuple[str, int]], id_field: str) -> None:
    """Collection resumes by id, so two problems must never share one."""
    first: dict[str, int] = {}
    for p, (src, line) in zip(problems, lines):
        if p.id in first:
            raise DataError(src, line, id_field, f"duplicate id '{p.id}' (first at {first[p.id]})")
        first[p.id] = line


def _scalar_meta(row: dict, used: set[str]) -> dict:
    return {k: v for k, v in row.items() if k not in used and (v is None or isinstance(v, (str, int, float, bool)))}


def load_problems(cfg) -> list[Problem]:
    """Problems from cfg.path with cfg.prompt_field / answer_field / id_field."""
    if not cfg.path:
        raise UserError("data.path is required for the jsonl task (a file, directory or hub dataset)")
    prompt_f = cfg.prompt_field or "prompt"
    answer_f = cfg.answer_field or "answer"
    id_f = cfg.id_field or "id"
    source = Path(cfg.path).name or str(cfg.path)
    problems, where = [], []
    for index, (src, line, row) in enumerate(iter_rows(cfg.path, cfg.split)):
        prompt = prompt_text(row, prompt_f, src, line)
        answer = answer_text(row_field(row, answer_f, src, line), src, line, answer_f)
        if id_f in row or cfg.id_field:
            pid = id_text(row_field(row, id_f, src, line), src, line, id_f)
        else:
            pid = f"{Path(source).stem}-{index}"
        steps = row.get("solution_steps")
        if steps is not None and (not isinstance(steps, list) or not all(isinstance(s, str) for s in steps)):
            raise DataError(src, line, "solution_steps", "expected a list of strings")
        meta = _scalar_meta(row, {prompt_f, answer_f, id_f, "solution_steps"})
        problems.append(Problem(id=pid, prompt=prompt, answer=answer, source=source,
                                solution_steps=steps, meta=meta, where=Where(src, line, prompt_f)))
        where.append((src, line))
    check_unique(problems, where, id_f)
    return problems


def format_solution(steps: list[str], answer: str) -> str:
    """One step per line, then "Answer: x" (the line the chat instruction asks for)."""
    lines = [s.strip() for s in steps if s.strip()]
    if not lines or not lines[-1].startswith("Answer:"):
        lines.append(f"Answer: {answer}")
    return "\n".join(lines)
