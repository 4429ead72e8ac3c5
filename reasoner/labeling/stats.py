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


class _Tally:
    """Running counts of label_stats over trajectories."""

    def __init__(self):
        self.n_traj = self.n_steps = self.n_lab = self.n_est = self.n_pos = self.full = 0
        self.soft_sum = 0.0
        self.truth_seen = False
        self.agree = {"all": [0, 0], "estimated": [0, 0]}
        self.confusion = {"true_pos": 0, "false_pos": 0, "true_neg": 0, "false_neg": 0}   # positive = step judged right
        self.unique: dict[tuple, tuple[bool, bool | None]] = {}
        self.first = {"wrong_solutions": 0, "located": 0, "located_correct": 0}

    def add(self, t) -> None:
        labels = t.step_labels
        self.n_traj += 1
        self.n_steps += len(labels)
        self.full += all(v is not None for v in labels)
        counts = t.meta.get("mc_rollouts") or [None] * len(labels)
        truth = t.meta.get("true_step_labels")
        for i, v in enumerate(labels):
            if v is not None:
                self.add_step(t, i, v, bool(counts[i]) if i < len(counts) else False, truth)
        if truth is not None and len(truth) == len(labels):
            err = true_first_error(list(truth))
            loc = located_first_error(list(labels))
            if err is not None:
                self.first["wrong_solutions"] += 1
            if loc is not None:
                self.first["located"] += 1
                self.first["located_correct"] += loc == err

    def add_step(self, t, i: int, v: float, estimated: bool, truth) -> None:
        self.n_lab += 1
        self.n_pos += v > 0
        self.soft_sum += v
        self.n_est += estimated
        known = truth is not None and i < len(truth)
        if estimated:
            self.unique.setdefault((t.problem_id, tuple(t.steps[:i + 1])), (v > 0, bool(truth[i]) if known else None))
        if not known:
            return
        self.truth_seen = True
        ok = (v > 0) == bool(truth[i])
        self.agree["all"][0] += ok
        self.agree["all"][1] += 1
        if estimated:
            self.agree["estimated"][0] += ok
            self.agree["estimated"][1] += 1
            self.confusion[("true_" if ok else "false_") + ("pos" if v > 0 else "neg")] += 1

    def agreement(self, rollouts: int | None) -> dict:
        confusion, first = self.confusion, self.first
        judged = [(h, tr) for h, tr in self.unique.values() if tr is not None]
        uniq_ok = sum(h == tr for h, tr in judged)
        out = {
            "all_labelled_steps": _ratio(*self.agree["all"]),
            "estimated_steps": _ratio(*self.agree["estimated"]),
            "unique_estimated_prefixes": _ratio(uniq_ok, len(judged)),
            "confusion_estimated": confusion,
            # of the truly wrong estimated steps, the share labelled negative (and likewise right ones)
            "wrong_step_recall": _ratio(confusion["true_neg"], confusion["true_neg"] + confusion["false_pos"]),
            "right_step_recall": _ratio(confusion["true_pos"], confusion["true_pos"] + confusion["false_neg"]),
            "first_error": {**first, "located_precision": _ratio(first["located_correct"], first["located"]),
                            "recall": _ratio(first["located_correct"], first["wrong_solutions"])},
        }
        if rollouts is not None:
            out["correct_estimated_steps_per_100_rollouts"] = _per100(self.agree["estimated"][0], rollouts)
            out["first_errors_found_per_100_rollouts"] = _per100(first["located_correct"], rollouts)
        return out


def label_stats(trajectories: Iterable, rollouts: int | None = None) -> dict:
    """Counts, positive rate, and (with true labels) agreement: per labelled step, per estimated
    step, per unique estimated prefix, a confusion table, and first-error localisation."""
    tally = _Tally()
    for t in trajectories:
        if t.step_labels is not None:
            tally.add(t)
    out = {
        "labelled_trajectories": tally.n_traj,
        "fully_labelled_trajectories": tally.full,
        "steps": tally.n_steps,
        "labelled_steps": tally.n_lab,
        "estimated_steps": tally.n_est,
        "positive_rate": _ratio(tally.n_pos, tally.n_lab),
        "mean_soft_label": round(tally.soft_sum / tally.n_lab, 4) if tally.n_lab else None,
        "unique_estimated_prefixes": len(tally.unique),
    }
    if rollouts is not None:
        out["rollouts"] = rollouts
        out["estimated_steps_per_100_rollouts"] = _per100(tally.n_est, rollouts)
    if tally.truth_seen:
        out["agreement"] = tally.agreement(rollouts)
    return out
