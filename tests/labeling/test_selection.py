"""OREO balanced selection (<= 4 pos, <= 4 neg, #pos <= max(#neg, 1)) and rejection sampling."""

from __future__ import annotations

import pytest

from reasoner.errors import UserError
from reasoner.labeling.selection import balanced_counts, select


@pytest.mark.parametrize("pos,neg,expected", [
    (5, 0, (1, 0)),     # all correct: keep a single positive
    (5, 2, (2, 2)),     # positives capped by the negatives
    (1, 6, (1, 4)),
    (0, 3, (0, 3)),
    (6, 6, (4, 4)),
    (0, 0, (0, 0)),
])
def test_balanced_counts(pos, neg, expected):
    assert balanced_counts(pos, neg) == expected


def test_select_keeps_sample_order_and_items():
    items = ["a", "b", "c", "d", "e", "f"]
    rewards = [1, 0, 1, 1, 0, 1]
    assert select(items, rewards, "none") == items
    assert select(items, rewards, "correct") == ["a", "c", "d", "f"]
    assert select(items, rewards, "balanced") == ["a", "b", "c", "e"]
    assert select(items, rewards, "balanced", max_positive=1, max_negative=1) == ["a", "b"]


def test_unknown_selection_is_a_user_error():
    with pytest.raises(UserError, match="selection 'best'"):
        select([1], [1.0], "best")
