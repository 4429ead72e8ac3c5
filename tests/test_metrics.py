"""pass@k, maj@k by hand (ALGORITHMS.md §7)."""

from __future__ import annotations

from math import comb

import pytest

from reasoner.metrics import maj_at_k, majority_vote, pass_at_k


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (16, 0, 4), (16, 16, 8), (5, 2, 4), (8, 1, 8)])
def test_pass_at_k_matches_combinatorial_formula(n, c, k):
    expected = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_1_is_fraction_correct():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)


def test_pass_at_k_rejects_bad_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_majority_vote_ties_go_to_first_seen_and_none_never_wins():
    assert majority_vote(["7", "8", "8", "7"]) == 0
    assert majority_vote([None, None, "3"]) == 2
    assert majority_vote([None, None]) is None


def test_maj_at_k_uses_first_k_samples():
    keys = ["1", "2", "2", "1", "1"]
    correct = [True, False, False, True, True]
    assert maj_at_k(keys, correct, 3) == 0.0  # "2" wins among the first 3
    assert maj_at_k(keys, correct, 5) == 1.0  # "1" wins among all 5
