"""Choosing one candidate from many: majority vote, best score, score-weighted vote.

Pure functions of answers and scores. Ties always go to the candidate generated first, so a
search is reproducible; a candidate without an answer never wins while one with an answer exists.
"""

from __future__ import annotations

from typing import Callable, Sequence


def group_answers(answers: Sequence[str | None], same: Callable[[str, str], bool]) -> list[int | None]:
    """Group id per answer: equivalent answers (under `same`) share one id, None stays None.

    Each new answer is compared with one representative per group, so the cost is
    answers x groups grader calls at most (few groups in practice).
    """
    reps: list[str] = []
    seen: dict[str, int] = {}
    out: list[int | None] = []
    for a in answers:
        if a is None:
            out.append(None)
            continue
        if a in seen:
            out.append(seen[a])
            continue
        g = next((j for j, r in enumerate(reps) if same(a, r)), None)
        if g is None:
            g = len(reps)
            reps.append(a)
        seen[a] = g
        out.append(g)
    return out


def pick_best(answers: Sequence[str | None], scores: Sequence[float]) -> int:
    """Index of the highest score among answered candidates (all candidates if none answered)."""
    if not scores:
        raise ValueError("no candidates to choose from")
    pool = [i for i, a in enumerate(answers) if a is not None] or list(range(len(scores)))
    return max(pool, key=lambda i: (scores[i], -i))


def pick_majority(groups: Sequence[int | None]) -> int:
    """First member of the most frequent answer group (ties: the group that appeared first)."""
    if not groups:
        raise ValueError("no candidates to choose from")
    counts: dict[int, int] = {}
    for g in groups:
        if g is not None:
            counts[g] = counts.get(g, 0) + 1
    if not counts:
        return 0
    best = max(counts.values())
    return next(i for i, g in enumerate(groups) if g is not None and counts[g] == best)


def pick_weighted(groups: Sequence[int | None], scores: Sequence[float]) -> int:
    """Weighted best-of-N: the answer group with the largest summed score, then its best member.

    Ties between groups go to the one whose first member came first.
    """
    if not groups:
        raise ValueError("no candidates to choose from")
    totals: dict[int, float] = {}
    first: dict[int, int] = {}
    for i, g in enumerate(groups):
        if g is not None:
            totals[g] = totals.get(g, 0.0) + float(scores[i])
            first.setdefault(g, i)
    if not totals:
        return max(range(len(scores)), key=lambda i: (scores[i], -i))
    win = max(totals, key=lambda g: (totals[g], -first[g]))
    return max((i for i, g in enumerate(groups) if g == win), key=lambda i: (scores[i], -i))


def choose(mode: str, answers: Sequence[str | None], scores: Sequence[float], same: Callable[[str, str], bool]) -> int:
    """Index chosen by mode: "best" (highest score), "vote" (score-weighted), "majority" (count)."""
    if mode == "best":
        return pick_best(answers, scores)
    groups = group_answers(answers, same)
    if mode == "vote":
        return pick_weighted(groups, scores)
    if mode == "majority":
        return pick_majority(groups)
    raise ValueError(f"unknown selection mode {mode!r}")
