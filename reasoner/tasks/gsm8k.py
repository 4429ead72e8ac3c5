"""GSM8K: grade-school word problems with a numeric answer.

Rows have `question` and `answer`; the answer is the worked solution, one step per line with
calculator notes like `<<48/2=24>>`, and a final `#### 72`. Problem: prompt = question, answer = the
text after `####` without thousands commas, steps = the lines before it with the notes removed,
id = f"gsm8k-{split}-{index}".
"""

from __future__ import annotations

import re
from pathlib import Path

from reasoner.data import Problem, Where, iter_rows
from reasoner.errors import DataError
from reasoner.tasks.generic import answer_text, check_unique, format_solution, id_text, prompt_text, row_field

__all__ = ["DEFAULT_HUB", "HUB_CONFIG", "strip_calculator", "parse_solution", "load_problems", "format_solution"]

DEFAULT_HUB = "openai/gsm8k"
HUB_CONFIG = "main"
_CALC_RE = re.compile(r"<<[^<>]*>>")


def strip_calculator(text: str) -> str:
    """Remove GSM8K's `<<a*b=c>>` calculator annotations (the result after them stays)."""
    return _CALC_RE.sub("", text)


def parse_solution(text: str) -> tuple[list[str], str]:
    """(steps, answer) from a GSM8K answer field; ValueError when there is no '####' line."""
    if "####" not in text:
        raise ValueError("no '#### <answer>' line")
    body, final = text.rsplit("####", 1)
    answer = final.strip().replace(",", "")
    if not answer:
        raise ValueError("empty answer after '####'")
    steps = [strip_calculator(line).strip() for line in body.split("\n")]
    return [s for s in steps if s], answer


def _split_label(path: str, split: str) -> str:
    """The split named by a train.jsonl / test.jsonl file, else the configured one (for ids)."""
    stem = Path(path).name.split(".")[0]
    return stem if Path(path).is_file() and stem in ("train", "test") else split


def load_problems(cfg) -> list[Problem]:
    """GSM8K from cfg.path (file, directory holding train/test.jsonl, hub name) or the hub."""
    path = cfg.path or DEFAULT_HUB
    config = HUB_CONFIG if path == DEFAULT_HUB else None
    prompt_f = cfg.prompt_field or "question"
    answer_f = cfg.answer_field or "answer"
    split = _split_label(path, cfg.split)
    problems, where = [], []
    for index, (src, line, row) in enumerate(iter_rows(path, cfg.split, config)):
        prompt = prompt_text(row, prompt_f, src, line)
        raw = row_field(row, answer_f, src, line)
        if not isinstance(raw, str):
            raise DataError(src, line, answer_f, f"expected the worked solution text, got {type(raw).__name__}")
        try:
            steps, answer = parse_solution(raw)
        except ValueError as exc:
            raise DataError(src, line, answer_f, str(exc)) from None
        answer = answer_text(answer, src, line, answer_f)
        pid = (id_text(row_field(row, cfg.id_field, src, line), src, line, cfg.id_field)
               if cfg.id_field else f"gsm8k-{split}-{index}")
        problems.append(Problem(id=pid, prompt=prompt, answer=answer, source="gsm8k",
                                solution_steps=steps, meta={"split": split, "index": index},
                                where=Where(src, line, prompt_f)))
        where.append((src, line))
    check_unique(problems, where, cfg.id_field or "id")
    return problems
