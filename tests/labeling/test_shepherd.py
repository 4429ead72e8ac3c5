"""Math-Shepherd labels: soft = fraction of k rollouts that are correct, hard = soft > 0, the
last step is the outcome, and identical prefixes are rolled out once in a single call."""

from __future__ import annotations

from reasoner.labeling.rollout import PrefixRequest, Rollout
from reasoner.labeling.shepherd import hard, shepherd_labels


class FakeRollouts:
    """Prefix -> number of correct rollouts out of k (table lookup); records every call."""

    def __init__(self, table: dict[tuple, int]):
        self.table, self.calls = table, []

    def __call__(self, requests, k):
        self.calls.append([r.steps for r in requests])
        return [[Rollout("x", ("x",), i < self.table[r.steps], 1) for i in range(k)] for r in requests]


def req(*steps, pid="p"):
    return PrefixRequest(pid, "Q\n", "7", tuple(steps))


def test_soft_labels_by_hand_and_outcome_on_last_step():
    fake = FakeRollouts({("a",): 3, ("a", "b"): 0, ("c",): 4})
    out, spent = shepherd_labels([(req("a", "b", "z"), 0.0), (req("c", "d"), 1.0)], 4, fake)
    # prefixes: (a) 3/4, (a,b) 0/4, then outcome 0; (c) 4/4, then outcome 1
    assert out[0].labels == [0.75, 0.0, 0.0] and out[0].rollouts == [4, 4, 0]
    assert out[1].labels == [1.0, 1.0] and out[1].rollouts == [4, 0]
    assert spent == 3 * 4
    assert [hard(v) for v in out[0].labels] == [True, False, False]


def test_shared_prefixes_are_rolled_out_once_in_one_call():
    fake = FakeRollouts({("a",): 1, ("a", "b"): 1, ("a", "c"): 2})
    sols = [(req("a", "b", "x"), 0.0), (req("a", "b", "y"), 0.0), (req("a", "c", "y"), 1.0)]
    out, spent = shepherd_labels(sols, 2, fake)
    assert len(fake.calls) == 1
    assert sorted(fake.calls[0]) == [("a",), ("a", "b"), ("a", "c")]
    assert spent == 3 * 2
    assert out[0].labels[:2] == out[1].labels[:2] == [0.5, 0.5]
    assert out[2].labels == [0.5, 1.0, 1.0]


def test_same_steps_of_different_problems_are_not_shared():
    fake = FakeRollouts({("a",): 1})
    _, spent = shepherd_labels([(req("a", "b", pid="p1"), 0.0), (req("a", "b", pid="p2"), 0.0)], 2, fake)
    assert len(fake.calls[0]) == 2 and spent == 4


def test_empty_and_one_step_solutions_cost_nothing():
    fake = FakeRollouts({})
    out, spent = shepherd_labels([(req(), 0.0), (req("Answer: 7"), 1.0)], 8, fake)
    assert out[0].labels == [] and out[1].labels == [1.0]
    assert spent == 0 and fake.calls == []
