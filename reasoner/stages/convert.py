"""`reasoner convert`: step-labelled data between our trajectories, TRL PRM and Math-Shepherd.

Reads every input record first (any bad one stops with file:line:field and exit 2, nothing
written), then writes the output in one atomic replace. Formats:
- trajectories: our Trajectory jsonl (what `reasoner collect` writes);
- trl-prm: TRL PRMTrainer rows {prompt, completions, labels}; on import the outcome is the last
  step's label and problem ids are a hash of the prompt;
- math-shepherd (import only): rows {input, label} where "ки" ends each step and `label` holds
  "+"/"-" at the tags.
`input_format=auto` tells them apart by the first record's fields.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from reasoner.errors import DataError, UserError

INPUT_FORMATS = ("auto", "trajectories", "trl-prm", "math-shepherd")
OUTPUT_FORMATS = ("trajectories", "trl-prm")


def detect_format(row: dict, path, line) -> str:
    """The input format a record's fields belong to."""
    if "completions" in row and "labels" in row:
        return "trl-prm"
    if "steps" in row and "problem_id" in row:
        return "trajectories"
    if isinstance(row.get("input"), str) and "ки" in row["input"]:
        return "math-shepherd"
    raise DataError(path, line, None, "cannot tell the format (expected trajectories, TRL PRM {prompt, completions, "
                                      "labels} or Math-Shepherd {input, label}); set input_format")


def read_input(path: str, fmt: str, separator: str) -> list[tuple[str, int, object]]:
    """(file, line, Trajectory) for every record of any supported input format (validated)."""
    from reasoner.data import Trajectory, iter_rows, trl_prm_to_trajectory
    from reasoner.labeling.formats import math_shepherd_to_trajectory

    out, per_problem = [], Counter()
    for src, line, row in iter_rows(path):
        if fmt == "auto":
            fmt = detect_format(row, src, line)
        if fmt == "trajectories":
            out.append((src, line, Trajectory.from_dict(row, src, line)))
            continue
        if fmt == "trl-prm":
            t = trl_prm_to_trajectory(row, src, line, separator)
        else:
            t = math_shepherd_to_trajectory(row, src, line, separator)
        index = per_problem[t.problem_id]
        per_problem[t.problem_id] += 1
        t.id = f"{t.problem_id}/{index}"
        out.append((src, line, t))
    return out


def to_trl_rows(records: list, partial: str, label_type: str, threshold: float) -> tuple[list[dict], Counter]:
    """TRL PRM rows from (file, line, Trajectory) records, and counts of what happened to
    records with missing labels."""
    from reasoner.labeling.formats import labels_for_export, to_trl_prm

    rows, counts = [], Counter()
    for path, line, t in records:
        labels = t.step_labels
        if labels is None or not t.steps or (partial == "error" and any(v is None for v in labels)):
            if partial == "error":
                raise DataError(path, line, "step_labels", f"trajectory '{t.id}' has steps without a label "
                                                        "(set partial=fill, truncate or skip)")
            counts["skipped_unlabelled"] += 1
            continue
        kept = labels_for_export(labels, partial)
        if kept is None:
            counts["skipped_partial"] += 1
            continue
        if len(kept) < len(labels):
            counts["truncated"] += 1
        counts["filled_labels"] += sum(a is None for a in labels[:len(kept)])
        rows.append(to_trl_prm(t, kept, label_type, threshold))
    return rows, counts


def run(cfg) -> dict:
    from reasoner.labeling.formats import PARTIAL
    from reasoner.utils.io import write_jsonl_atomic

    if cfg.input_format not in INPUT_FORMATS:
        raise UserError(f"config: input_format '{cfg.input_format}' is unknown (choose from {', '.join(INPUT_FORMATS)})")
    if cfg.output_format not in OUTPUT_FORMATS:
        raise UserError(f"config: output_format '{cfg.output_format}' is unknown (choose from {', '.join(OUTPUT_FORMATS)})")
    if cfg.partial not in PARTIAL:
        raise UserError(f"config: partial '{cfg.partial}' is unknown (choose from {', '.join(PARTIAL)})")
    if cfg.label_type not in ("soft", "hard"):
        raise UserError(f"config: label_type '{cfg.label_type}' is unknown (choose from soft, hard)")
    if not cfg.step_separator:
        raise UserError("config: step_separator must not be empty")
    if not Path(cfg.input).exists():
        raise UserError(f"{cfg.input}: no such file or directory")
    records = read_input(cfg.input, cfg.input_format, cfg.step_separator)
    counts: Counter = Counter()
    if cfg.output_format == "trajectories":
        rows = [t.to_dict() for _, _, t in records]
    else:
        rows, counts = to_trl_rows(records, cfg.partial, cfg.label_type, cfg.threshold)
    write_jsonl_atomic(cfg.output, rows)
    result = {"read": len(records), "written": len(rows), **counts}
    print(" ".join(f"{k}: {v}" for k, v in result.items()) + f" -> {cfg.output}")
    return result
