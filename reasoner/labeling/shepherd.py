"""Math-Shepherd Monte-Carlo step labels (ALGORITHMS.md §2).

For a solution s_1..s_m, every prefix s_1..s_i with i < m gets k rollouts; its soft label is the
fraction that reach the gold answer and its hard label is 1 iff at least one does (soft > 0).
The last step's label is the solution's own outcome (a complete solution needs no rollout).
Identical prefixes (same problem, same steps) are rolled out once, and all prefixes of a batch
go to the RolloutFn in one call, so shared prefixes cost nothing and the backend batches them.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasoner.labeling.rollout import PrefixRequest, RolloutFn

__all__ = ["StepLabels", "shepherd_labels", "hard"]


@dataclass
class StepLabels:
    """Labels of one solution: soft values (None where unknown) and rollouts behind each one."""

    labels: list[float | None]
    rollouts: list[int | None]     # rollouts behind each label (0: the solution's own outcome)


def hard(label: float | None) -> bool | None:
    """Math-Shepherd's hard label from a soft one: some rollout reached the answer."""
    return None if label is None else label > 0


def shepherd_labels(solutions: list[tuple[PrefixRequest, float]], k: int,
                    rollout_fn: RolloutFn) -> tuple[list[StepLabels], int]:
    """Soft labels for every solution, and the number of rollouts spent.

    `solutions[j]` is (request whose `steps` are the whole solution, outcome reward in [0, 1]).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    unique: dict[tuple, int] = {}
    requests: list[PrefixRequest] = []
    for req, _ in solutions:
        for i in range(1, len(req.steps)):
            key = (req.problem_id, req.steps[:i])
            if key not in unique:
                unique[key] = len(requests)
                requests.append(PrefixRequest(req.problem_id, req.prompt, req.gold, req.steps[:i]))
    results = rollout_fn(requests, k) if requests else []
    if len(results) != len(requests) or any(len(r) != k for r in results):
        raise RuntimeError("rollout function returned the wrong number of rollouts")
    mc = [sum(r.correct for r in rs) / k for rs in results]
    out = []
    for req, reward in solutions:
        m = len(req.steps)
        labels: list[float | None] = [mc[unique[(req.problem_id, req.steps[:i])]] for i in range(1, m)]
        counts: list[int | None] = [k] * (m - 1)
        if m:
            labels.append(float(reward))
            counts.append(0)
        out.append(StepLabels(labels, counts))
    return out, len(requests) * k
