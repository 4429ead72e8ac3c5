"""How good a PRM is against reference step labels: step accuracy, exact step AUC, and
ProcessBench-style first-error F1. Plain Python: no sklearn dependency, easy to check by hand.
"""

from __future__ import annotations

import math


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """Exact ROC AUC = P(score of a random positive > that of a random negative), ties count 1/2
    (the Mann-Whitney U statistic with average ranks). None when one class is absent."""
    n_pos = sum(1 for y in labels if y)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum, i = 0.0, 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg_rank = (i + j) / 2 + 1  # 1-based average rank of the tie group
        rank_sum += avg_rank * sum(1 for k in order[i:j + 1] if labels[k])
        i = j + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def first_error(labels: list[bool]) -> int:
    """Index of the first wrong step, -1 when there is none (ProcessBench's convention)."""
    for i, ok in enumerate(labels):
        if not ok:
            return i
    return -1


def predicted_first_error(scores: list[float], threshold: float) -> int:
    """The first step whose score is below `threshold`, -1 when none is."""
    return first_error([s >= threshold for s in scores])


def first_error_f1(pred: list[int], gold: list[int]) -> dict:
    """ProcessBench: accuracy on erroneous solutions (first-error index exactly right), on
    correct ones (no error predicted), and their harmonic mean F1."""
    err = [p == g for p, g in zip(pred, gold) if g != -1]
    cor = [p == -1 for p, g in zip(pred, gold) if g == -1]
    acc_err = sum(err) / len(err) if err else None
    acc_cor = sum(cor) / len(cor) if cor else None
    if acc_err is None or acc_cor is None:
        f1 = None
    else:
        f1 = 0.0 if acc_err + acc_cor == 0 else 2 * acc_err * acc_cor / (acc_err + acc_cor)
    return {"acc_erroneous": acc_err, "acc_correct": acc_cor, "first_error_f1": f1,
            "erroneous": len(err), "correct": len(cor)}


def prm_metrics(scores: list[list[float]], labels: list[list[bool]], threshold: float = 0.5) -> dict:
    """Every metric eval-prm reports, from per-solution step scores and boolean step labels."""
    flat_s = [s for row in scores for s in row]
    flat_y = [y for row in labels for y in row]
    step_acc = sum((s >= threshold) == y for s, y in zip(flat_s, flat_y)) / len(flat_y) if flat_y else None
    out = {"solutions": len(labels), "steps": len(flat_y),
           "positive_steps": sum(flat_y), "step_accuracy": step_acc, "step_auc": auc(flat_s, flat_y)}
    out.update(first_error_f1([predicted_first_error(s, threshold) for s in scores],
                              [first_error(y) for y in labels]))
    all_ok = [all(y) for y in labels]
    out["solution_auc_min"] = auc([min(s) if s else 1.0 for s in scores], all_ok)
    return out


def best_threshold_f1(scores: list[list[float]], labels: list[list[bool]]) -> tuple[float | None, float | None]:
    """(threshold, F1) maximising first-error F1: an oracle upper bound (the threshold is chosen
    on the evaluated set itself), reported beside the F1 at the configured threshold.

    A step is flagged when its score < t. An erroneous solution (first error g) is judged right
    iff s_g < t <= min(s_j, j < g); a correct one iff t <= min(s). Each is an interval of t, so
    every candidate t is counted with two binary searches instead of re-scoring everything.
    """
    import bisect

    err_lo, err_hi, cor_hi = [], [], []
    for s, y in zip(scores, labels):
        g = first_error(y)
        if g == -1:
            cor_hi.append(min(s) if s else math.inf)
        else:
            hi = min(s[:g]) if g else math.inf
            if s[g] < hi:
                err_lo.append(s[g])
                err_hi.append(hi)
    n_err = sum(1 for y in labels if first_error(y) != -1)
    n_cor = len(cor_hi)
    if not n_err or not n_cor:
        return None, None
    err_lo.sort(), err_hi.sort(), cor_hi.sort()
    points = sorted({v for v in err_lo + err_hi + cor_hi if math.isfinite(v)})
    candidates = [-math.inf] + points + [math.nextafter(v, math.inf) for v in points]
    best: tuple[float | None, float | None] = (None, None)
    for t in sorted(candidates):
        right_err = bisect.bisect_left(err_lo, t) - bisect.bisect_left(err_hi, t)  # lo < t <= hi
        right_cor = n_cor - bisect.bisect_left(cor_hi, t)  # t <= hi
        a, b = right_err / n_err, right_cor / n_cor
        f1 = 0.0 if a + b == 0 else 2 * a * b / (a + b)
        if best[1] is None or f1 > best[1]:
            best = (t, f1)
    return (max(best[0], 0.0) if best[0] is not None else None), best[1]  # scores lie in [0, 1]
