"""Problem / Trajectory records, reading them from every input form, and PRM-format converters.

Rows come from reasoner.readers (a .jsonl / .json / .parquet file, a `save_to_disk` directory, a
directory of data files, or a hub dataset name). Bad input raises DataError naming file, line
(1-based for jsonl, 0-based record index otherwise) and field, so the CLI can print one line and
exit 2.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

from reasoner.errors import DataError, UserError
from reasoner.readers import iter_rows, read_rows, type_name  # noqa: F401  (read_rows: importable from here too)
from reasoner.utils.io import append_jsonl, read_jsonl_tolerant, write_json_atomic, write_jsonl_atomic

__all__ = [
    "Where", "Problem", "Trajectory", "split_steps", "read_rows", "iter_rows", "read_problems",
    "read_trajectories", "read_records", "write_jsonl_atomic", "write_json_atomic", "append_jsonl",
    "read_jsonl_tolerant", "trajectory_to_trl_prm", "trl_prm_to_trajectory", "parse_math_shepherd",
    "math_shepherd_to_trl_prm",
]



# --------------------------------------------------------------------------- validation helpers

class _Check:
    """Field validation bound to one record's location, so every error names file/line/field."""

    def __init__(self, d: Any, path, line):
        self.path, self.line = path, line
        if not isinstance(d, dict):
            raise DataError(path, line, None, f"expected a JSON object, got {type_name(d)}")
        self.d = d

    def fail(self, name: str | None, message: str):
        raise DataError(self.path, self.line, name, message)

    def get(self, name: str, default: Any = ...) -> Any:
        if name not in self.d:
            if default is not ...:
                return default
            self.fail(name, "missing")
        return self.d[name]

    def string(self, name: str, *, nonempty: bool = False, optional: bool = False) -> str | None:
        value = self.get(name, None if optional else ...)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self.fail(name, f"expected a string, got {type_name(value)}")
        if nonempty and not value.strip():
            self.fail(name, "is empty")
        return value

    def string_list(self, name: str, *, optional: bool = False) -> list[str] | None:
        value = self.get(name, None if optional else ...)
        if value is None and optional:
            return None
        if not isinstance(value, list):
            self.fail(name, f"expected a list of strings, got {type_name(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(name, f"item {i}: expected a string, got {type_name(item)}")
        return list(value)

    def number(self, name: str) -> float:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(name, f"expected a finite number, got {value!r}"[:200])
        return float(value)

    def mapping(self, name: str) -> dict:
        value = self.get(name, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(name, f"expected an object, got {type_name(value)}")
        return dict(value)


def _labels(chk: _Check, name: str, n_steps: int, *, allow_none: bool) -> list[float | None] | None:
    """Per-step labels: numbers (or booleans) in [0, 1], one per step."""
    value = chk.get(name, None)
    if value is None:
        return None
    if not isinstance(value, list):
        chk.fail(name, f"expected a list of numbers, got {type_name(value)}")
    if len(value) != n_steps:
        chk.fail(name, f"has {len(value)} labels but there are {n_steps} steps")
    out: list[float | None] = []
    for i, v in enumerate(value):
        if v is None and allow_none:
            out.append(None)
            continue
        if not isinstance(v, (bool, int, float)) or not (0.0 <= float(v) <= 1.0):
            chk.fail(name, f"item {i}: expected a number in [0, 1], got {v!r}"[:200])
        out.append(float(v))
    return out


def _check_steps(chk: _Check, name: str, steps: list[str], response: str) -> None:
    """Steps are the response cut at its separators: none empty, each found in the response after
    the one before it, and a non-blank response has at least one. Trainers place step labels and
    values by these positions, so steps that do not match the response would train on the wrong
    tokens."""
    if not steps and response.strip():
        chk.fail(name, "is empty but the response is not (steps are the response split at the step separator)")
    pos = 0
    for i, step in enumerate(steps):
        if not step.strip():
            chk.fail(name, f"item {i}: is empty")
        at = response.find(step, pos)
        if at < 0:
            after = f" after step {i - 1}" if i else ""
            chk.fail(name, f"item {i}: {step[:60]!r} does not occur in the response{after}")
        pos = at + len(step)


# --------------------------------------------------------------------------- records

@dataclass(frozen=True)
class Where:
    """Where a record's prompt came from, so a later check (prompt length) can name file, line, field."""

    path: str
    line: int | None
    field: str | None

    def error(self, message: str) -> DataError:
        return DataError(self.path, self.line, self.field, message)


def _where(path, line, name: str) -> Where | None:
    return None if path is None else Where(str(path), line, name)


@dataclass
class Problem:
    id: str
    prompt: str                   # the question, without chat template
    answer: str                   # gold final answer as a string ("18", "\\frac{1}{2}")
    source: str                   # "arith" | "gsm8k" | "math500" | file name
    solution_steps: list[str] | None = None   # gold steps when known (gym, GSM8K)
    meta: dict = field(default_factory=dict)
    where: Where | None = field(default=None, compare=False, repr=False)   # the prompt's file/line/field; not saved

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt": self.prompt, "answer": self.answer, "source": self.source,
                "solution_steps": None if self.solution_steps is None else list(self.solution_steps),
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d: Any, path=None, line=None) -> Problem:
        """Validated construction; DataError names path, line and the offending field."""
        chk = _Check(d, path, line)
        return cls(
            id=chk.string("id", nonempty=True),
            prompt=chk.string("prompt", nonempty=True),
            answer=chk.string("answer"),
            source=chk.string("source"),
            solution_steps=chk.string_list("solution_steps", optional=True),
            meta=chk.mapping("meta"),
            where=_where(path, line, "prompt"),
        )


@dataclass
class Trajectory:
    id: str                       # f"{problem_id}/{sample_index}"
    problem_id: str
    prompt: str                   # the prompt as sent (after the chat template)
    response: str
    steps: list[str]
    pred_answer: str | None
    reward: float                 # outcome reward (1.0 correct, 0.0 otherwise)
    step_labels: list[float | None] | None = None
    meta: dict = field(default_factory=dict)   # generator metadata (model, temperature, finish_reason, ...)
    where: Where | None = field(default=None, compare=False, repr=False)   # the prompt's file/line/field; not saved

    def to_dict(self) -> dict:
        return {"id": self.id, "problem_id": self.problem_id, "prompt": self.prompt,
                "response": self.response, "steps": list(self.steps), "pred_answer": self.pred_answer,
                "reward": self.reward,
                "step_labels": None if self.step_labels is None else list(self.step_labels),
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d: Any, path=None, line=None) -> Trajectory:
        """Validated construction; DataError names path, line and the offending field."""
        chk = _Check(d, path, line)
        steps = chk.string_list("steps")
        ids = chk.string("id", nonempty=True), chk.string("problem_id", nonempty=True)
        prompt, response = chk.string("prompt", nonempty=True), chk.string("response")
        _check_steps(chk, "steps", steps, response)
        return cls(
            id=ids[0],
            problem_id=ids[1],
            prompt=prompt,
            response=response,
            steps=steps,
            pred_answer=chk.string("pred_answer", optional=True),
            reward=chk.number("reward"),
            step_labels=_labels(chk, "step_labels", len(steps), allow_none=True),
            meta=chk.mapping("meta"),
            where=_where(path, line, "prompt"),
        )


def split_steps(text: str, separator: str = "\n") -> list[str]:
    """Steps of a response: pieces between separators, stripped, empty pieces dropped."""
    return [s.strip() for s in text.split(separator) if s.strip()]


def read_problems(path_or_name: str | os.PathLike, split: str | None = None) -> list[Problem]:
    """Problem records (as written by to_dict) from any supported input."""
    return [Problem.from_dict(row, src, line) for src, line, row in iter_rows(path_or_name, split)]


def read_trajectories(path: str | os.PathLike) -> list[Trajectory]:
    """Trajectory records (as written by to_dict / collection) from any supported input."""
    return [Trajectory.from_dict(row, src, line) for src, line, row in iter_rows(path)]


def read_records(path: str | os.PathLike, kind: str) -> list[Problem] | list[Trajectory]:
    """read_problems or read_trajectories by name ("problem" | "trajectory")."""
    readers = {"problem": read_problems, "trajectory": read_trajectories}
    if kind not in readers:
        raise ValueError(f"unknown record kind {kind!r} (choose from {', '.join(readers)})")
    return readers[kind](path)


# --------------------------------------------------------------------------- PRM formats

def trajectory_to_trl_prm(t: Trajectory, threshold: float | None = None) -> dict:
    """TRL PRMTrainer record {prompt, completions, labels} from a labelled trajectory.

    Labels stay floats (soft MC labels) unless `threshold` is given, then label >= threshold -> bool.
    """
    if t.step_labels is None or any(v is None for v in t.step_labels):
        raise UserError(f"trajectory '{t.id}': every step needs a label to export a PRM record")
    labels: list = list(t.step_labels)
    if threshold is not None:
        labels = [v >= threshold for v in labels]
    return {"prompt": t.prompt, "completions": list(t.steps), "labels": labels}


def _prompt_id(prompt: str) -> str:
    return "prm-" + hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:12]


def trl_prm_to_trajectory(rec: Any, path=None, line=None, separator: str = "\n",
                          problem_id: str | None = None, index: int = 0) -> Trajectory:
    """Trajectory from a TRL PRM record (validated like from_dict).

    The record has no outcome, so reward = 1.0 iff the last step is labelled correct (>= 0.5), which
    is what the final step's label means in Math-Shepherd-style data. Response = steps joined by
    `separator`; problem_id defaults to a hash of the prompt so equal prompts group together.
    """
    chk = _Check(rec, path, line)
    prompt = chk.string("prompt", nonempty=True)
    steps = chk.string_list("completions")
    if not steps:
        chk.fail("completions", "is empty (a PRM record needs at least one step)")
    _check_steps(chk, "completions", steps, separator.join(steps))
    labels = _labels(chk, "labels", len(steps), allow_none=False)
    if labels is None:
        chk.fail("labels", "missing")
    pid = problem_id or (rec.get("id") if isinstance(rec.get("id"), str) else None) or _prompt_id(prompt)
    return Trajectory(id=f"{pid}/{index}", problem_id=pid, prompt=prompt, response=separator.join(steps),
                      steps=steps, pred_answer=None, reward=1.0 if labels and labels[-1] >= 0.5 else 0.0,
                      step_labels=labels, meta={"source_format": "trl_prm"}, where=_where(path, line, "prompt"))


def parse_math_shepherd(text: str, label_text: str | None = None,
                        tag: str = "ки") -> tuple[str | None, list[str], list[bool | None]]:
    """(prompt, steps, labels) from a Math-Shepherd record.

    Math-Shepherd stores two strings: `input`, the question followed by "Step 1: ... ки\\nStep 2:
    ... ки", and `label`, the same text with every tag replaced by "+" (step correct) or "-". The
    tag is two characters and its label one, so the k-th tag at index i in `input` has its label at
    index i - k*(len(tag)-1) in `label`. Steps are the text between tags; the prompt is what comes
    before "Step 1:" in the first piece (None when there is no "Step 1:" marker, then the whole
    first piece is step 1). Text after the last tag is not a step. Without `label_text` the labels
    are None.
    """
    positions, start = [], 0
    while (i := text.find(tag, start)) >= 0:
        positions.append(i)
        start = i + len(tag)
    if not positions:
        raise ValueError(f"no '{tag}' step tags in Math-Shepherd text")
    pieces = [text[a:b] for a, b in zip([0] + [p + len(tag) for p in positions[:-1]], positions)]
    prompt: str | None = None
    first = pieces[0]
    if "Step 1:" in first:
        head, rest = first.split("Step 1:", 1)
        prompt, pieces[0] = head.strip() or None, "Step 1:" + rest
    steps = [p.strip() for p in pieces]
    labels: list[bool | None] = [None] * len(steps)
    if label_text is not None:
        shrink = len(tag) - 1
        for k, pos in enumerate(positions):
            j = pos - k * shrink
            mark = label_text[j] if 0 <= j < len(label_text) else ""
            if mark not in ("+", "-"):
                raise ValueError(f"label text has {mark!r} where step {k + 1}'s '+'/'-' should be")
            labels[k] = mark == "+"
    return prompt, steps, labels


def math_shepherd_to_trl_prm(input_text: str, label_text: str) -> dict:
    """TRL PRM record from Math-Shepherd's (input, label) pair."""
    prompt, steps, labels = parse_math_shepherd(input_text, label_text)
    return {"prompt": prompt or "", "completions": steps, "labels": labels}
