"""OmegaPRM: Q/U by hand, the binary search finds the first error, popped pairs are never
selected again (OpenR's bug), the rollout budget is a hard cap, and batched searches across
problems give the same trees as running each alone."""

from __future__ import annotations

import math

import pytest

from reasoner.labeling.omegaprm import Node, OmegaParams, OmegaSearch, q_value, run_searches, u_value
from reasoner.labeling.rollout import PrefixRequest, Rollout

GOLD_LEN = 5


def world(prefix: tuple, k: int, correct_from_good: int = 2) -> list[Rollout]:
    """A toy policy: a prefix is good iff every step is "ok". From a good prefix the first
    `correct_from_good` rollouts finish correctly; the others slip ("bad") after i % rest ok
    steps. From a bad prefix every rollout is wrong. Depends on the prefix only."""
    good = all(s == "ok" for s in prefix)
    rest = GOLD_LEN - len(prefix)
    out = []
    for i in range(k):
        if good and i < correct_from_good:
            steps = ("ok",) * rest
            out.append(Rollout(" ".join(steps), steps, True, 10 * len(steps)))
        else:
            j = i % max(rest, 1)
            steps = ("ok",) * j + ("bad",) + ("x",) * max(rest - j - 1, 0)
            out.append(Rollout(" ".join(steps), steps, False, 10 * len(steps)))
    return out


class Counting:
    def __init__(self):
        self.calls = []

    def __call__(self, requests, k):
        self.calls.append(len(requests))
        return [world(r.steps, k) for r in requests]


def drive(search: OmegaSearch, k: int) -> int:
    """Run one search alone; returns the number of MC estimates requested."""
    gen, n = search.run(), 0
    try:
        prefix = next(gen)
        while True:
            n += 1
            prefix = gen.send(world(prefix, k))
    except StopIteration:
        return n


def wrong(*steps, tokens=None):
    return Rollout(" ".join(steps), tuple(steps), False, tokens if tokens is not None else 10 * len(steps))


def test_q_and_u_by_hand():
    # Q = 0.5^(1-0.25) * 0.9^(100/500) = 0.594604 * 0.979148 = 0.582205
    assert q_value(0.25, 100, 0.5, 0.9, 500) == pytest.approx(0.5946036 * 0.9791484, rel=1e-6)
    # U = 0.125 * sqrt(4) / (1 + 1) = 0.125
    assert u_value(4, 1, 0.125) == pytest.approx(0.125)
    assert u_value(0, 0, 0.125) == 0.0


def test_binary_search_finds_first_error_and_emits_evaluated_prefixes():
    s = OmegaSearch(0.5, 16, [wrong("ok", "ok", "bad", "x", "x")], OmegaParams(rollouts=4, budget=8))
    assert drive(s, 4) == 2
    # lo=0, hi=5: mid=2 -> (ok, ok) good, MC 2/4 -> lo=2; mid=3 -> (ok, ok, bad) MC 0 -> hi=3
    first = s.searched[0]
    assert first.state == () and first.first_error == 2
    assert s.tree[("ok", "ok")].mc == 0.5 and s.tree[("ok", "ok", "bad")].mc == 0.0
    assert s.spent == 8
    labels, counts = s.labels_for(("ok", "ok", "bad", "x", "x"), 0.0)
    assert labels == [None, 0.5, 0.0, None, 0.0] and counts == [None, 4, 4, None, 0]


def test_popped_pairs_are_never_selected_again_and_pool_drains():
    s = OmegaSearch(0.5, 16, [wrong("ok", "bad", "x", "x", "x"), wrong("bad", "x", "x", "x", "x")],
                    OmegaParams(rollouts=4, budget=10_000))
    pushed = len(s.pool)
    original_add = s._add_wrong

    def counting_add(state, rollouts):
        nonlocal pushed
        before = len(s.pool)
        original_add(state, rollouts)
        pushed += len(s.pool) - before

    s._add_wrong = counting_add
    drive(s, 4)
    assert not s.pool
    keys = [(p.state, id(p.rollout)) for p in s.searched]
    assert len(keys) == len(set(keys)) == pushed
    assert all(p.first_error is not None for p in s.searched)
    # every located first error is the first "bad" step of that solution
    for p in s.searched:
        full = p.state + p.rollout.steps
        assert full[p.first_error] == "bad" and all(x == "ok" for x in full[:p.first_error])


def test_budget_is_a_hard_cap():
    for budget in (0, 3, 4, 9, 12):
        s = OmegaSearch(0.5, 16, [wrong("ok", "ok", "ok", "bad", "x")] * 3, OmegaParams(rollouts=4, budget=budget))
        drive(s, 4)
        assert s.spent <= budget and s.spent == 4 * s.estimates
        assert s.spent + 4 > budget or not s.pool


def test_states_with_mc_zero_or_one_add_nothing_to_the_pool():
    assert OmegaSearch(0.0, 8, [wrong("bad")]).pool == []
    assert OmegaSearch(1.0, 8, [wrong("bad")]).pool == []
    assert len(OmegaSearch(0.5, 8, [wrong("bad"), wrong()]).pool) == 1   # an empty rollout has nothing to search


def test_selection_order_q_plus_u_by_hand():
    s = OmegaSearch(0.5, 8, [wrong("a", tokens=100), wrong("b", tokens=300)], OmegaParams(c_puct=0.125))
    s.tree[("a",)] = Node(("a",), 0.5, 4)
    s.pool.append((("a",), wrong("c", tokens=400)))
    # pop 1: sum N = 0 so U = 0; Q = 0.5^0.5 * 0.9^(len/500): 100 -> 0.6924, 300 -> 0.6638, 400 -> 0.6499
    state, r = s.pop()
    assert (state, r.steps) == ((), ("a",))
    assert s.score((), wrong("b", tokens=300)) == pytest.approx(
        math.sqrt(0.5) * 0.9 ** 0.6 + 0.125 * math.sqrt(1) / (1 + 1))
    # pop 2: root visited once -> U(root) = 0.0625, U(a) = 0.125: 0.6638 + 0.0625 < 0.6499 + 0.125
    state, r = s.pop()
    assert (state, r.steps) == (("a",), ("c",))
    state, r = s.pop()
    assert (state, r.steps) == ((), ("b",))
    assert s.pop() is None and s.total_visits == 3 and s.tree[()].visits == 2


def test_batched_searches_equal_separate_runs():
    def make():
        return [OmegaSearch(0.5, 16, [wrong("ok", "ok", "ok", "bad", "x"), wrong("bad", "x", "x", "x", "x")],
                            OmegaParams(rollouts=4, budget=24)),
                OmegaSearch(0.25, 16, [wrong("ok", "bad", "x", "x", "x")], OmegaParams(rollouts=4, budget=40)),
                OmegaSearch(1.0, 16, [], OmegaParams(rollouts=4, budget=40))]

    alone = make()
    for s in alone:
        drive(s, 4)
    together = make()
    fake = Counting()
    rounds = run_searches(together, lambda i, steps: PrefixRequest(i, "Q", "g", steps), fake, 4)
    assert rounds == len(fake.calls) and max(fake.calls) <= 2
    assert sum(fake.calls) == sum(s.estimates for s in alone)
    for a, b in zip(alone, together):
        assert {k: v.mc for k, v in a.tree.items()} == {k: v.mc for k, v in b.tree.items()}
        assert a.spent == b.spent
