"""OmegaPRM step labels (ALGORITHMS.md §2): binary search for the first error, Q+U pool, budget.

State s = a tuple of steps (the root is the empty prefix). MC(s) = correct/total over k
rollouts from s; the root's MC comes from the collection's own n samples. The pool holds
(state, wrong rollout) pairs of states with 0 < MC(s) < 1, scored

    Q(s, r) = alpha^(1 - MC(s)) * beta^(len(r) / L)      len(r) = generated tokens of r
    U(s)    = c_puct * sqrt(sum_s' N(s')) / (1 + N(s))   N(s) = pairs of s selected so far

The best pair is popped (ties: the earliest added) and never pushed back -- OpenR's version
re-adds it in its maintenance phase and selects it again. Scores are computed afresh at every
pop, so U always uses the current visit counts. The popped rollout r = r_1..r_T (known wrong)
is binary-searched: lo = 0 (MC(s) > 0), hi = T; while hi - lo > 1, estimate MC(s + r[:mid])
with k rollouts and move lo (MC > 0) or hi (MC = 0). Step hi of r is the first error. Every
evaluated prefix becomes a tree node with its MC, and its wrong rollouts join the pool when
0 < MC < 1. A prefix already in the tree is reused at no cost. The budget counts rollouts: an
estimate is only started when k more rollouts fit, otherwise the search of that problem ends.

The search is a generator that yields prefixes and receives their rollouts, so `run_searches`
can batch the pending estimates of many problems into one generate() call per round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Generator

from reasoner.labeling.rollout import PrefixRequest, Rollout, RolloutFn

__all__ = ["OmegaParams", "Node", "Searched", "OmegaSearch", "q_value", "u_value", "run_searches"]

Steps = tuple[str, ...]


@dataclass(frozen=True)
class OmegaParams:
    rollouts: int = 8          # k: rollouts per MC estimate
    budget: int = 64           # rollouts per problem
    alpha: float = 0.5
    beta: float = 0.9
    length_scale: float = 500  # L
    c_puct: float = 0.125


def q_value(mc: float, length: int, alpha: float, beta: float, length_scale: float) -> float:
    """Q(s, r) = alpha^(1 - MC(s)) * beta^(len(r) / L): prefer likely-correct states, short rollouts."""
    return alpha ** (1.0 - mc) * beta ** (length / length_scale)


def u_value(total_visits: int, visits: int, c_puct: float) -> float:
    """U(s) = c_puct * sqrt(sum N) / (1 + N(s)): prefer states selected less often."""
    return c_puct * math.sqrt(total_visits) / (1 + visits)


@dataclass
class Node:
    steps: Steps
    mc: float
    rollouts: int              # rollouts behind mc (the root: the collection's n samples)
    visits: int = 0            # N(s)


@dataclass
class Searched:
    """A popped (state, wrong rollout) pair and where its binary search put the first error."""

    state: Steps
    rollout: Rollout
    first_error: int | None    # index in state + rollout.steps; None when the budget cut the search


@dataclass
class OmegaSearch:
    """OmegaPRM on one problem; drive `run()` directly or through `run_searches`."""

    root_mc: float
    root_rollouts: int
    wrong: list[Rollout]                  # the root's wrong rollouts eligible for the pool
    params: OmegaParams = field(default_factory=OmegaParams)

    def __post_init__(self):
        p = self.params
        if p.rollouts < 1 or p.budget < 0 or not (0 < p.alpha <= 1) or not (0 < p.beta <= 1) \
                or p.length_scale <= 0 or p.c_puct < 0:
            raise ValueError(f"invalid OmegaPRM parameters: {p}")
        self.tree: dict[Steps, Node] = {(): Node((), self.root_mc, self.root_rollouts)}
        self.pool: list[tuple[Steps, Rollout]] = []
        self.searched: list[Searched] = []
        self.spent = 0
        self.total_visits = 0
        self.estimates = 0
        self._add_wrong((), self.wrong)

    # ------------------------------------------------------------------ pool

    def _add_wrong(self, state: Steps, rollouts: list[Rollout]) -> None:
        if 0 < self.tree[state].mc < 1:
            self.pool.extend((state, r) for r in rollouts if not r.correct and r.steps)

    def score(self, state: Steps, rollout: Rollout) -> float:
        node, p = self.tree[state], self.params
        return (q_value(node.mc, rollout.num_tokens, p.alpha, p.beta, p.length_scale)
                + u_value(self.total_visits, node.visits, p.c_puct))

    def pop(self) -> tuple[Steps, Rollout] | None:
        """Remove and return the best-scoring pair (first added wins ties), counting the visit."""
        if not self.pool:
            return None
        scores = [self.score(s, r) for s, r in self.pool]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        state, rollout = self.pool.pop(best)
        self.tree[state].visits += 1
        self.total_visits += 1
        return state, rollout

    # ---------------------------------------------------------------- search

    def _affordable(self) -> bool:
        return self.spent + self.params.rollouts <= self.params.budget

    def run(self) -> Generator[Steps, list[Rollout], None]:
        """Yields prefixes to estimate; expects their k rollouts back via send()."""
        while self.pool and self._affordable():
            state, rollout = self.pop()
            lo, hi = 0, len(rollout.steps)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                prefix = state + rollout.steps[:mid]
                node = self.tree.get(prefix)
                if node is None:
                    if not self._affordable():
                        self.searched.append(Searched(state, rollout, None))
                        return
                    results = yield prefix
                    if len(results) != self.params.rollouts:
                        raise RuntimeError("rollout function returned the wrong number of rollouts")
                    self.spent += len(results)
                    self.estimates += 1
                    node = Node(prefix, sum(r.correct for r in results) / len(results), len(results))
                    self.tree[prefix] = node
                    self._add_wrong(prefix, results)
                if node.mc > 0:
                    lo = mid
                else:
                    hi = mid
            self.searched.append(Searched(state, rollout, len(state) + hi - 1))

    # --------------------------------------------------------------- results

    def labels_for(self, steps: Steps | list[str], reward: float) -> tuple[list[float | None], list[int | None]]:
        """Per-step (MC label, rollouts behind it) of one solution: tree values where the prefix
        was evaluated, the outcome for the last step, None elsewhere."""
        steps = tuple(steps)
        labels: list[float | None] = []
        counts: list[int | None] = []
        for i in range(1, len(steps) + 1):
            if i == len(steps):
                labels.append(float(reward))
                counts.append(0)
            elif (node := self.tree.get(steps[:i])) is not None:
                labels.append(node.mc)
                counts.append(node.rollouts)
            else:
                labels.append(None)
                counts.append(None)
        return labels, counts


def run_searches(searches: list[OmegaSearch], request_for: Callable[[int, Steps], PrefixRequest],
                 rollout_fn: RolloutFn, k: int, on_round: Callable[[int, int], None] | None = None) -> int:
    """Run many problems' searches together: each round gathers every search's pending prefix
    and rolls them all out in one call. `request_for(i, prefix)` builds search i's request.
    Returns the number of rounds; `on_round(round, requests)` reports progress."""
    gens = [s.run() for s in searches]
    pending: dict[int, Steps] = {}
    for i, g in enumerate(gens):
        try:
            pending[i] = next(g)
        except StopIteration:
            pass
    rounds = 0
    while pending:
        order = list(pending)
        results = rollout_fn([request_for(i, pending[i]) for i in order], k)
        rounds += 1
        if on_round is not None:
            on_round(rounds, len(order))
        nxt: dict[int, Steps] = {}
        for i, res in zip(order, results):
            try:
                nxt[i] = gens[i].send(res)
            except StopIteration:
                pass
        pending = nxt
    return rounds
