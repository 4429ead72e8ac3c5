"""MCTS pieces by hand: the PUCT formula, merged children and their priors, progressive widening."""

from __future__ import annotations

import math

from reasoner.search.mcts import Node, backup, merge_children, puct, select_path, wants_widening
from reasoner.search.states import State


def node(text, score=0.0, finish=None, order=0):
    return Node(State(0, "Q\n", text, finish=finish, score=score, order=order))


def test_puct_matches_the_openr_formula():
    parent, child = node(""), node("a", score=0.4)
    parent.visits, child.prior = 9, 0.5
    # unvisited: Q is the child's own evaluation; c = log((1 + 9 + 19652) / 19652) + 1.25
    c = math.log((1 + 9 + 19652) / 19652) + 1.25
    assert math.isclose(puct(parent, child, 19652, 1.25), 0.4 + c * 0.5 * 3 / 1)
    child.visits, child.value_sum = 3, 2.1
    assert math.isclose(puct(parent, child, 19652, 1.25), 0.7 + c * 0.5 * 3 / 4)


def test_duplicate_samples_merge_and_priors_are_sample_shares():
    root = node("")
    new = merge_children(root, [State(0, "Q\n", t, order=i) for i, t in enumerate(["a\n", "b\n", "a\n", "a\n"])])
    assert [ch.state.text for ch in new] == ["a\n", "b\n"]
    assert [ch.prior for ch in root.children] == [0.75, 0.25]
    new = merge_children(root, [State(0, "Q\n", t, order=9) for t in ["b\n", "c\n", "b\n", "b\n"]])
    assert [ch.state.text for ch in new] == ["c\n"]
    assert [ch.prior for ch in root.children] == [3 / 8, 4 / 8, 1 / 8]
    assert root.expansions == 2 and root.samples == 8


def test_selection_follows_puct_and_stops_where_widening_is_due():
    root = node("")
    merge_children(root, [State(0, "Q\n", "good\n", score=0.9, order=1), State(0, "Q\n", "bad\n", score=0.1, order=2)])
    backup([root], 0.9)
    assert [n.state.text for n in select_path(root, 19652, 1.25)] == ["", "good\n"]
    root.visits = 16  # 1 + 0.5 * sqrt(16) = 3 > 1 expansion: widen the root before descending
    assert wants_widening(root, 0.5) and select_path(root, 19652, 1.25, widen=0.5) == [root]
    assert not wants_widening(root, 0.0)
