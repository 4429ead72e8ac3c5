"""PRM training-data formats: TRL PRMTrainer records and Math-Shepherd strings, to and from Trajectory."""

from __future__ import annotations

import hashlib
from typing import Any

from reasoner.errors import UserError
from reasoner.data.records import Trajectory, where_of
from reasoner.data.validation import Check, check_steps, read_labels


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


def prompt_id(prompt: str) -> str:
    return "prm-" + hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:12]


def trl_prm_to_trajectory(rec: Any, path=None, line=None, separator: str = "\n",
                          problem_id: str | None = None, index: int = 0) -> Trajectory:
    """Trajectory from a TRL PRM record (validated like from_dict).

    The record has no outcome, so reward = 1.0 iff the last step is labelled correct (>= 0.5), which
    is what the final step's label means in Math-Shepherd-style data. Response = steps joined by
    `separator`; problem_id defaults to a hash of the prompt so equal prompts group together.
    """
    chk = Check(rec, path, line)
    prompt = chk.string("prompt", nonempty=True)
    steps = chk.string_list("completions")
    if not steps:
        chk.fail("completions", "is empty (a PRM record needs at least one step)")
    check_steps(chk, "completions", steps, separator.join(steps))
    labels = read_labels(chk, "labels", len(steps), allow_none=False)
    if labels is None:
        chk.fail("labels", "missing")
    pid = problem_id or (rec.get("id") if isinstance(rec.get("id"), str) else None) or prompt_id(prompt)
    return Trajectory(id=f"{pid}/{index}", problem_id=pid, prompt=prompt, response=separator.join(steps),
                      steps=steps, pred_answer=None, reward=1.0 if labels and labels[-1] >= 0.5 else 0.0,
                      step_labels=labels, meta={"source_format": "trl_prm"}, where=where_of(path, line, "prompt"))


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
