"""The results page's readers on hand-written run files."""

from __future__ import annotations

import json

import pytest

from reasoner.prm.metrics import auc
from reasoner.recipes.gym_report import Runs, value_ranking


def _auc(pos, neg):
    return auc(pos + neg, [True] * len(pos) + [False] * len(neg))


def test_the_page_uses_the_prm_metrics_auc_ties_half():
    assert _auc([0.9, 0.5], [0.1]) == 1.0
    assert _auc([0.5], [0.5]) == 0.5
    assert _auc([0.2, 0.8], [0.5, 0.5]) == pytest.approx(0.5)   # (0 + 0 + 1 + 1) / 4
    assert _auc([], [0.1]) is None


def test_value_ranking_separates_within_problem_from_across_problems(tmp_path):
    """Problem a is easy (high V), b hard (low V): across problems V looks right, within each it
    prefers the wrong sample, and best-of-n picks the wrong one both times."""
    def cand(score, correct):
        return {"score": score, "correct": correct}

    rows = [{"correct": False, "candidates": [cand(0.9, True), cand(0.95, False), cand(0.9, True)]},
            {"correct": False, "candidates": [cand(0.1, True), cand(0.2, False), cand(0.05, False)]}]
    (tmp_path / "oreo-value-bon").mkdir()
    (tmp_path / "oreo-value-bon" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    v = value_ranking(Runs(tmp_path, (0,)))
    # within: a: pairs (0.9 vs 0.95) x2 -> 0; b: 0.1 vs 0.2 -> 0, 0.1 vs 0.05 -> 1: 1 of 4
    assert v["auc"] == pytest.approx(0.25)
    assert v["pass1"] == pytest.approx(3 / 6) and v["bon"] == 0.0 and v["problems"] == 2
    # across: right {0.9, 0.9, 0.1} vs wrong {0.95, 0.2, 0.05}: 0.9 beats 0.2, 0.05 (x2); 0.1 beats 0.05 -> 5 of 9
    assert v["global_auc"] == pytest.approx(5 / 9)
    assert value_ranking(Runs(tmp_path / "none", (0,))) is None
