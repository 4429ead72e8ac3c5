"""Which sampled trajectories of a problem are kept (before labelling, so labels cost less).

- none: all of them.
- balanced (OREO, ALGORITHMS.md §2): at most `max_negative` wrong ones and at most
  `max_positive` right ones, with #positives <= max(#negatives, 1), so the value/policy losses see
  both outcomes and problems the policy already solves do not dominate.
- correct: rejection sampling -- only the correct ones (RFT data).
Trajectories are taken in sample order (samples are i.i.d., so that is a random subset) and
keep their original ids.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

from reasoner.errors import UserError

__all__ = ["SELECTIONS", "select", "balanced_counts"]

SELECTIONS = ("none", "balanced", "correct")
T = TypeVar("T")


def balanced_counts(positives: int, negatives: int, max_positive: int = 4, max_negative: int = 4) -> tuple[int, int]:
    """(#positives, #negatives) kept by OREO's rule."""
    neg = min(negatives, max_negative)
    pos = min(positives, max_positive, max(neg, 1))
    return pos, neg


def select(items: Sequence[T], rewards: Sequence[float], name: str = "none",
           max_positive: int = 4, max_negative: int = 4) -> list[T]:
    """The kept items of ONE problem, in their original order (reward >= 0.5 counts as correct)."""
    if name not in SELECTIONS:
        raise UserError(f"config: selection '{name}' is unknown (choose from {', '.join(SELECTIONS)})")
    if len(items) != len(rewards):
        raise ValueError("items and rewards differ in length")
    correct = [r >= 0.5 for r in rewards]
    if name == "none":
        return list(items)
    if name == "correct":
        return [it for it, ok in zip(items, correct) if ok]
    if max_positive < 0 or max_negative < 0:
        raise UserError("config: selection.max_positive and max_negative must be >= 0")
    pos, neg = balanced_counts(sum(correct), len(correct) - sum(correct), max_positive, max_negative)
    kept = []
    for it, ok in zip(items, correct):
        if ok and pos > 0:
            kept.append(it)
            pos -= 1
        elif not ok and neg > 0:
            kept.append(it)
            neg -= 1
    return kept
