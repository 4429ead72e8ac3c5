"""Exact AUC and ProcessBench first-error F1, checked by hand and against brute force."""

from __future__ import annotations

import itertools
import random

import pytest

from reasoner.prm.metrics import auc, best_threshold_f1, first_error, first_error_f1, predicted_first_error, prm_metrics


def brute_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_by_hand():
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) -> 3/4
    assert auc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == 0.75
    assert auc([0.5, 0.5], [True, False]) == 0.5  # a tie counts one half
    assert auc([0.1, 0.2], [True, True]) is None


def test_auc_matches_brute_force_with_ties():
    rng = random.Random(0)
    for _ in range(20):
        scores = [rng.choice([0.1, 0.2, 0.3, 0.5, 0.9]) for _ in range(30)]
        labels = [rng.random() < 0.4 for _ in range(30)]
        if any(labels) and not all(labels):
            assert auc(scores, labels) == pytest.approx(brute_auc(scores, labels))


def test_first_error_conventions():
    assert first_error([True, True]) == -1
    assert first_error([True, False, False]) == 1
    assert predicted_first_error([0.9, 0.4, 0.8], 0.5) == 1
    assert predicted_first_error([0.9, 0.6], 0.5) == -1


def test_first_error_f1_by_hand():
    # erroneous: gold 1 pred 1 (right), gold 0 pred -1 (wrong) -> acc_err 1/2
    # correct:   pred -1 (right), pred 2 (wrong), pred -1 (right) -> acc_cor 2/3
    # F1 = 2 * 0.5 * 0.6667 / (0.5 + 0.6667) = 0.571429
    out = first_error_f1(pred=[1, -1, -1, 2, -1], gold=[1, 0, -1, -1, -1])
    assert out["acc_erroneous"] == 0.5 and out["acc_correct"] == pytest.approx(2 / 3)
    assert out["first_error_f1"] == pytest.approx(4 / 7)
    assert first_error_f1([-1], [-1])["first_error_f1"] is None  # no erroneous solutions


def test_prm_metrics_by_hand():
    scores = [[0.9, 0.2, 0.1], [0.8, 0.7]]
    labels = [[True, False, False], [True, True]]
    m = prm_metrics(scores, labels, 0.5)
    assert m["step_accuracy"] == 1.0 and m["step_auc"] == 1.0 and m["first_error_f1"] == 1.0
    assert m["steps"] == 5 and m["positive_steps"] == 3


def test_best_threshold_matches_brute_force():
    rng = random.Random(1)
    scores = [[rng.random() for _ in range(rng.randint(1, 4))] for _ in range(25)]
    labels = []
    for s in scores:
        k = rng.randint(0, len(s))  # first error at k (k == len: none)
        labels.append([i < k for i in range(len(s))])
    t, f1 = best_threshold_f1(scores, labels)
    gold = [first_error(y) for y in labels]
    brute = max(first_error_f1([predicted_first_error(s, c) for s in scores], gold)["first_error_f1"]
                for c in [0.0] + [x + 1e-12 for row in scores for x in row])
    assert f1 == pytest.approx(brute)
    assert first_error_f1([predicted_first_error(s, t) for s in scores], gold)["first_error_f1"] == pytest.approx(f1)
