"""Export helpers: the monotone fill of unknown labels and Math-Shepherd import."""

from __future__ import annotations

import pytest

from reasoner.data import Trajectory
from reasoner.errors import DataError
from reasoner.labeling.formats import fill_monotone, labels_for_export, math_shepherd_to_trajectory, to_trl_prm


@pytest.mark.parametrize("labels,filled", [
    ([None, 0.5, None, 0.0], [0.5, 0.5, None, 0.0]),      # before a positive: its value
    ([0.25, 0.0, None, 0.0], [0.25, 0.0, 0.0, 0.0]),      # after a zero: 0
    ([None, 0.0, 0.0], [None, 0.0, 0.0]),                  # before a lone zero: unknown
    ([None, None, 1.0], [1.0, 1.0, 1.0]),
    ([0.5, 0.25], [0.5, 0.25]),
])
def test_fill_monotone(labels, filled):
    assert fill_monotone(labels) == filled


def test_labels_for_export_policies():
    labels = [None, 0.5, None, 0.0]
    assert labels_for_export(labels, "fill") == [0.5, 0.5]      # step 2 lies between a positive and a zero
    assert labels_for_export(labels, "truncate") is None
    assert labels_for_export([0.5, None, 0.0], "truncate") == [0.5]
    assert labels_for_export(labels, "skip") is None
    assert labels_for_export([None, 0.0, 0.0], "fill") is None
    assert labels_for_export([0.5, 0.0], "error") == [0.5, 0.0]


def test_to_trl_prm_soft_and_hard():
    t = Trajectory("p/0", "p", "Q\n", "a\nb\nc", ["a", "b", "c"], None, 0.0, [0.5, 0.0, 0.0])
    assert to_trl_prm(t, [0.5, 0.0]) == {"prompt": "Q\n", "completions": ["a", "b"], "labels": [0.5, 0.0]}
    assert to_trl_prm(t, [0.5, 0.0, 0.0], "hard")["labels"] == [True, False, False]


def test_math_shepherd_row():
    row = {"input": "What is 1+1? Step 1: 1+1=2 ки\nStep 2: The answer is 3 ки",
           "label": "What is 1+1? Step 1: 1+1=2 +\nStep 2: The answer is 3 -"}
    t = math_shepherd_to_trajectory(row, "ms.jsonl", 4)
    assert t.prompt == "What is 1+1?"
    assert t.steps == ["Step 1: 1+1=2", "Step 2: The answer is 3"]
    assert t.step_labels == [1.0, 0.0] and t.reward == 0.0
    with pytest.raises(DataError, match=r"ms.jsonl:4: field 'input'"):
        math_shepherd_to_trajectory({"label": "x"}, "ms.jsonl", 4)
