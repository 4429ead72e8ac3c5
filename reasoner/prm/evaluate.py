"""Judge a StepScorer against reference step labels: the ground-truth checker of the gym, or
the (MC) labels stored with the trajectories. Shared by eval-prm and train-prm's final eval.
"""

from __future__ import annotations

from reasoner.errors import UserError

LABEL_MODES = ("auto", "truth", "file")


def truth_labels(task, ex) -> list[bool]:
    """Ground-truth labels of one example: meta["true_step_labels"] when collection stored
    them, else the task's step checker on the prompt (ProcessBench semantics)."""
    stored = ex.meta.get("true_step_labels") if isinstance(ex.meta, dict) else None
    if isinstance(stored, list) and len(stored) == len(ex.steps) and all(isinstance(v, (bool, int, float)) for v in stored):
        return [bool(v) for v in stored]
    from reasoner.data import Problem

    try:
        return task.check_steps(Problem(id=ex.problem_id, prompt=ex.prompt, answer="", source=task.name), ex.steps)
    except ValueError as exc:
        where = getattr(ex, "where", None)
        message = f"no ground-truth labels for example '{ex.id}' ({exc}); use label_source=file"
        raise (where.error(message) if where is not None else UserError(message)) from None


def resolve_mode(mode: str, task) -> str:
    if mode not in LABEL_MODES:
        raise UserError(f"config: label_source '{mode}' must be one of {', '.join(LABEL_MODES)}")
    if mode == "auto":
        return "truth" if task.step_checker is not None else "file"
    if mode == "truth" and task.step_checker is None:
        raise UserError(f"config: label_source=truth needs a task with a step checker (data=arith), not '{task.name}'")
    return mode


def reference_labels(examples, task, mode: str, threshold: float = 0.5, where: str | None = None):
    """(kept examples, boolean labels per kept example, soft labels or None per kept example).

    mode truth: every example with steps. mode file: examples whose every step is labelled;
    a label >= threshold counts as a correct step.
    """
    kept, hard, soft = [], [], []
    for ex in examples:
        if not ex.steps:
            continue
        if mode == "truth":
            kept.append(ex)
            hard.append(truth_labels(task, ex))
            soft.append(None)
        elif ex.labels is not None and all(v is not None for v in ex.labels):
            kept.append(ex)
            hard.append([v >= threshold for v in ex.labels])
            soft.append([float(v) for v in ex.labels])
    if not kept:
        what = "with steps" if mode == "truth" else "whose every step is labelled"
        raise UserError(f"{where + ': ' if where else ''}no examples {what} to evaluate against")
    return kept, hard, soft


def evaluate(scorer, examples, hard, soft=None, score_threshold: float = 0.5, batch_size: int = 64,
             on_batch=None) -> tuple[dict, list[dict]]:
    """(metrics, one row per solution with its scores and labels)."""
    from reasoner.prm.metrics import best_threshold_f1, prm_metrics

    scores: list[list[float]] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        scores += scorer.score([ex.prompt for ex in chunk], [ex.steps for ex in chunk])
        if on_batch:
            on_batch(len(scores))
    metrics = prm_metrics(scores, hard, score_threshold)
    metrics["score_threshold"] = score_threshold
    metrics["best_threshold"], metrics["best_threshold_f1"] = best_threshold_f1(scores, hard)
    if soft and all(s is not None for s in soft):
        err = [(a - b) ** 2 for s_row, y_row in zip(scores, soft) for a, b in zip(s_row, y_row)]
        metrics["label_mse"] = sum(err) / len(err) if err else None
    rows = [{"id": ex.id, "scores": [round(s, 6) for s in sc], "labels": y, "soft_labels": sl}
            for ex, sc, y, sl in zip(examples, scores, hard, soft or [None] * len(examples))]
    return metrics, rows


TABLE_KEYS = ("solutions", "steps", "positive_steps", "step_accuracy", "step_auc", "acc_erroneous",
              "acc_correct", "first_error_f1", "best_threshold", "best_threshold_f1", "solution_auc_min", "label_mse")


def format_table(metrics: dict) -> str:
    """A two-column text table of the headline metrics."""
    lines = ["metric              value", "------------------  --------"]
    for k in TABLE_KEYS:
        if k in metrics:
            v = metrics[k]
            lines.append(f"{k:<18}  {v:.4f}" if isinstance(v, float) else f"{k:<18}  {v}")
    return "\n".join(lines)
