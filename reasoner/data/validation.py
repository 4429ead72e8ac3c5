"""Field validation for records: every error names file, line and field (DataError)."""

from __future__ import annotations

import math
from typing import Any

from reasoner.errors import DataError


class Check:
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


def type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null",
            bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def read_labels(chk: Check, name: str, n_steps: int, *, allow_none: bool) -> list[float | None] | None:
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


def check_steps(chk: Check, name: str, steps: list[str], response: str) -> None:
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
