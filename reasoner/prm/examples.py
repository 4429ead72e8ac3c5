"""PRM training / evaluation examples from our Trajectory jsonl or the TRL PRM format.

Both formats may be mixed in one file; a row with `completions` is read as TRL PRM
({prompt, completions, labels}), any other row as a Trajectory. Every bad row raises DataError
naming file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reasoner.errors import UserError


@dataclass
class StepExample:
    id: str
    problem_id: str
    prompt: str                          # as sent to the policy (chat template applied)
    steps: list[str]
    labels: list[float | None] | None    # per-step labels in [0, 1]; None = not labelled
    outcome: float                       # 1.0 correct final answer, else 0.0
    meta: dict = field(default_factory=dict)
    where: object = None                 # data.Where of the prompt (file, line, field), for length errors


def read_examples(path: str, separator: str = "\n") -> list[StepExample]:
    """Every record of `path` as a StepExample (validated; DataError on bad rows)."""
    from reasoner.data import Trajectory, iter_rows, trl_prm_to_trajectory

    out = []
    for src, line, row in iter_rows(path):
        if isinstance(row, dict) and "completions" in row:
            t = trl_prm_to_trajectory(row, src, line, separator=separator, index=line or 0)
        else:
            t = Trajectory.from_dict(row, src, line)
        out.append(StepExample(t.id, t.problem_id, t.prompt, list(t.steps), t.step_labels, float(t.reward), t.meta,
                               t.where))
    if not out:
        raise UserError(f"{path}: holds no records")
    return out


def count_labelled(examples: list[StepExample]) -> tuple[int, int]:
    """(labelled steps, of which positive at 0.5) — a quick look at the label balance."""
    vals = [v for ex in examples for v in (ex.labels or []) if v is not None]
    return len(vals), sum(1 for v in vals if v >= 0.5)
