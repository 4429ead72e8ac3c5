"""Whether a run may continue under new settings: the first setting that differs from the old.

Collections and training runs resume in place; continuing one under other settings would mix
records of two configurations (collect) or splice two schedules into one run (training), so
both refuse with the first key that changed. Keys that only say where and how a run reports
(run_dir, logging, checkpoint cadence) may change.
"""

from __future__ import annotations

import json
from typing import Any


def plain(settings: dict) -> dict:
    """Settings as JSON keeps them (tuples as lists, other objects as their str), so a saved copy
    and the live one compare equal."""
    return json.loads(json.dumps(settings, default=str))


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def first_difference(old: dict, new: dict, free: tuple[str, ...] = ("run_dir",)) -> tuple[str, Any, Any] | None:
    """(key, old value, new value) of the first setting that differs, or None. Keys only one side
    has (added or dropped by another version) are not settings of both; a key in `free`, or under
    one ending in '.', may differ."""
    a, b = flatten(old), flatten(new)
    for key in sorted(set(a) & set(b)):
        if any(key == f or (f.endswith(".") and key.startswith(f)) for f in free):
            continue
        if a[key] != b[key]:
            return key, a[key], b[key]
    return None
