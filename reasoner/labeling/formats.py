"""Step-labelled records in and out of other formats: TRL PRM and Math-Shepherd ("ки") text.

TRL's PRMTrainer needs a label for every completion step, while OmegaPRM leaves steps it never
evaluated unlabelled (None). `fill_monotone` completes such labels with the rule the binary
search itself assumes -- a step before a positive prefix is fine, a step after a zero-MC prefix
is wrong: an unknown label takes the next positive label after it, or 0.0 after a zero label.
What stays unknown (e.g. the steps before a lone zero) is cut off with everything after it.
"""

from __future__ import annotations

from reasoner.data import Trajectory, _prompt_id, parse_math_shepherd
from reasoner.errors import DataError

__all__ = ["PARTIAL", "fill_monotone", "labels_for_export", "to_trl_prm", "math_shepherd_to_trajectory"]

PARTIAL = ("fill", "truncate", "skip", "error")


def fill_monotone(labels: list[float | None]) -> list[float | None]:
    """Unknown labels filled by the monotone rule (see the module doc); others unchanged."""
    out = list(labels)
    seen_zero = False
    for i, v in enumerate(out):
        if v is None:
            if seen_zero:
                out[i] = 0.0
        elif v <= 0:
            seen_zero = True
    nxt = None
    for i in range(len(out) - 1, -1, -1):
        v = out[i]
        if v is None:
            if nxt is not None:
                out[i] = nxt
        else:
            nxt = v if v > 0 else None
    return out


def labels_for_export(labels: list[float | None], partial: str) -> list[float] | None:
    """The labels to export under a `partial` policy: a (possibly shorter) fully labelled list,
    or None when the record is dropped. "error" is the caller's to raise (it knows the line)."""
    if partial not in PARTIAL:
        raise ValueError(f"partial must be one of {PARTIAL}, got {partial!r}")
    if all(v is not None for v in labels):
        return list(labels)
    if partial == "skip" or partial == "error":
        return None
    if partial == "fill":
        labels = fill_monotone(labels)
    cut = labels.index(None) if None in labels else len(labels)
    return list(labels[:cut]) or None


def to_trl_prm(t: Trajectory, labels: list[float], label_type: str = "soft", threshold: float = 0.0) -> dict:
    """{prompt, completions, labels} for TRL's PRMTrainer; completions are the first len(labels) steps."""
    out: list = list(labels)
    if label_type == "hard":
        out = [v > threshold for v in labels]
    return {"prompt": t.prompt, "completions": list(t.steps[:len(labels)]), "labels": out}


def math_shepherd_to_trajectory(row: dict, path, line, separator: str = "\n", index: int = 0) -> Trajectory:
    """A Trajectory from a Math-Shepherd row {input, label}: steps between "ки" tags, the question
    before "Step 1:", labels "+" -> 1.0 / "-" -> 0.0 (none without `label`), reward = last label."""
    text = row.get("input")
    if not isinstance(text, str):
        raise DataError(path, line, "input", "missing" if text is None else "expected a string")
    label_text = row.get("label")
    if label_text is not None and not isinstance(label_text, str):
        raise DataError(path, line, "label", "expected a string")
    try:
        prompt, steps, marks = parse_math_shepherd(text, label_text)
    except ValueError as exc:
        raise DataError(path, line, "label" if "label" in str(exc) else "input", str(exc)) from None
    if not prompt:
        raise DataError(path, line, "input", "no question before 'Step 1:'")
    labels = None if label_text is None else [1.0 if m else 0.0 for m in marks]
    pid = _prompt_id(prompt)
    return Trajectory(id=f"{pid}/{index}", problem_id=pid, prompt=prompt, response=separator.join(steps),
                      steps=steps, pred_answer=None, reward=labels[-1] if labels else 0.0,
                      step_labels=labels, meta={"source_format": "math_shepherd"})
