"""Statistics of step labels, and their agreement with ground truth where a task has one.

Works on Trajectory records as collection writes them: `step_labels` (soft, None = unknown),
`meta["mc_rollouts"]` (rollouts behind each label; 0 = the outcome of a complete solution,
absent for exact labels) and, on the gym, `meta["true_step_labels"]`. A soft label is read as
hard with Math-Shepherd's rule: positive iff > 0. "Estimated" labels are the ones that cost
rollouts (not the free last-step outcome); "unique prefixes" count each (problem, prefix) once,
since shared prefixes are estimated once (each costs k rollouts, so per rollout they say nothing;
the per-100-rollouts figures count labelled steps and first errors found instead).
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["label_stats", "located_first_error", "true_first_error"]


def _hard(v: float | None) -> bool | None:
    return None if v is None else v > 0


def located_first_error(labels: list[float | None]) -> int | None:
    """The first step i whose hard label is negative right after a positive one (or at i = 0):
    where the labels pin the first error down. None when no step is pinned."""
    for i, v in enumerate(labels):
        if _hard(v) is False and (i == 0 or _hard(labels[i - 1]) is True):
            return i
    return None


def true_first_error(truth: list[bool]) -> int | None:
    return truth.index(False) if False in truth else None


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _per100(count: int, rollouts: int) -> float | None:
    return round(100 * count / rollouts, 3) if rollouts else None


def label_stats(trajectories: Iterable, rollouts: int | None = None) -> dict:
    """Counts, positive rate, and (with true labels) agreement: per labelled step, per estimated
    step, per unique estimated prefix, a confusion table, and first-error localisation."""
    n_traj = n_steps = n_lab = n_est = n_pos = 0
    soft_sum = 0.0
    full = 0
    truth_seen = False
    agree = {"all": [0, 0], "estimated": [0, 0]}
    confusion = {"true_pos": 0, "false_pos": 0, "true_neg": 0, "false_neg": 0}   # positive = step judged right
    unique: dict[tuple, tuple[bool, bool | None]] = {}
    first = {"wrong_solutions": 0, "located": 0, "located_correct": 0}
    for t in trajectories:
        labels = t.step_labels
        if labels is None:
            continue
        n_traj += 1
        n_steps += len(labels)
        full += all(v is not None for v in labels)
        counts = t.meta.get("mc_rollouts") or [None] * len(labels)
        truth = t.meta.get("true_step_labels")
        for i, v in enumerate(labels):
            if v is None:
                continue
            n_lab += 1
            n_pos += v > 0
            soft_sum += v
            estimated = bool(counts[i]) if i < len(counts) else False
            n_est += estimated
            known = truth is not None and i < len(truth)
            if estimated:
                unique.setdefault((t.problem_id, tuple(t.steps[:i + 1])), (v > 0, bool(truth[i]) if known else None))
            if not known:
                continue
            truth_seen = True
            ok = (v > 0) == bool(truth[i])
            agree["all"][0] += ok
            agree["all"][1] += 1
            if estimated:
                agree["estimated"][0] += ok
                agree["estimated"][1] += 1
                confusion[("true_" if ok else "false_") + ("pos" if v > 0 else "neg")] += 1
        if truth is not None and len(truth) == len(labels):
            err = true_first_error(list(truth))
            loc = located_first_error(list(labels))
            if err is not None:
                first["wrong_solutions"] += 1
            if loc is not None:
                first["located"] += 1
                first["located_correct"] += loc == err
    out = {
        "labelled_trajectories": n_traj,
        "fully_labelled_trajectories": full,
        "steps": n_steps,
        "labelled_steps": n_lab,
        "estimated_steps": n_est,
        "positive_rate": _ratio(n_pos, n_lab),
        "mean_soft_label": round(soft_sum / n_lab, 4) if n_lab else None,
        "unique_estimated_prefixes": len(unique),
    }
    if rollouts is not None:
        out["rollouts"] = rollouts
        out["estimated_steps_per_100_rollouts"] = _per100(n_est, rollouts)
    if truth_seen:
        judged = [(h, tr) for h, tr in unique.values() if tr is not None]
        uniq_ok = sum(h == tr for h, tr in judged)
        out["agreement"] = {
            "all_labelled_steps": _ratio(*agree["all"]),
            "estimated_steps": _ratio(*agree["estimated"]),
            "unique_estimated_prefixes": _ratio(uniq_ok, len(judged)),
            "confusion_estimated": confusion,
            # of the truly wrong estimated steps, the share labelled negative (and likewise right ones)
            "wrong_step_recall": _ratio(confusion["true_neg"], confusion["true_neg"] + confusion["false_pos"]),
            "right_step_recall": _ratio(confusion["true_pos"], confusion["true_pos"] + confusion["false_neg"]),
            "first_error": {**first, "located_precision": _ratio(first["located_correct"], first["located"]),
                            "recall": _ratio(first["located_correct"], first["wrong_solutions"])},
        }
        if rollouts is not None:
            out["agreement"]["correct_estimated_steps_per_100_rollouts"] = _per100(agree["estimated"][0], rollouts)
            out["agreement"]["first_errors_found_per_100_rollouts"] = _per100(first["located_correct"], rollouts)
    return out
