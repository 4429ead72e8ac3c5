"""Monte Carlo tree search over reasoning steps (PUCT, as in OpenR / AlphaZero).

One rollout: descend from the root by PUCT to a leaf; expand it by sampling k next steps
(identical steps merge into one child whose prior is its share of the samples); evaluate the
children with the scorer (a PRM's score of the new step, or a value model's V); back up the
best child's value along the path. Progressive widening: a node already expanded e times is
expanded again (k more samples, merged into its children) once 1 + widen * sqrt(visits) > e,
so a node whose first k samples were all wrong is not a dead end. Every problem of a batch runs its rollouts in lockstep, so
one round is one batched generate() call and one batched scorer call.

PUCT(child) = Q + c(parent) * P * sqrt(N(parent)) / (1 + N(child)),
c(parent) = log((1 + N(parent) + c_base) / c_base) + c_init; Q = W/N, or the child's own
evaluation while unvisited. Budget: n = rollouts that expand a node (params.rollouts overrides);
descents that end on a finished leaf only back up its value and count towards a cap of
4 x rollouts descents. If no solution has finished when the rollouts are spent, the most
visited path is completed with one sampled rollout (charged to the budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reasoner.search.base import Budget, SearchResult, SearchTask
from reasoner.search.states import Extender, Scores, State, conclude

DESCENTS_PER_ROLLOUT = 4


@dataclass
class Node:
    state: State
    prior: float = 1.0
    children: list["Node"] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    expansions: int = 0
    samples: int = 0  # next-step samples drawn here (over all expansions)
    counts: dict = field(default_factory=dict)  # child text -> samples that gave it

    @property
    def expanded(self) -> bool:
        return self.expansions > 0

    @property
    def terminal(self) -> bool:
        return self.state.finished

    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else self.state.score


def puct(parent: Node, child: Node, c_base: float, c_init: float) -> float:
    c = math.log((1 + parent.visits + c_base) / c_base) + c_init
    return child.q() + c * child.prior * math.sqrt(parent.visits) / (1 + child.visits)


def wants_widening(node: Node, widen: float) -> bool:
    return node.expanded and not node.terminal and node.expansions < 1 + int(widen * math.sqrt(node.visits))


def select_path(root: Node, c_base: float, c_init: float, widen: float = 0.0) -> list[Node]:
    """Root-to-leaf path by PUCT (ties: the child created first); stops early at a node due
    for progressive widening."""
    path = [root]
    node = root
    while node.expanded and node.children and not node.terminal and not wants_widening(node, widen):
        node = max(node.children, key=lambda ch: (puct(node, ch, c_base, c_init), -ch.state.order))
        path.append(node)
    return path


def backup(path: list[Node], value: float) -> None:
    for node in path:
        node.visits += 1
        node.value_sum += value


def merge_children(parent: Node, states: list[State]) -> list[Node]:
    """Add k sampled steps as children; duplicates (also of earlier children) merge, and every
    child's prior is its share of all samples drawn at the parent. Returns the new children."""
    by_text = {ch.state.text: ch for ch in parent.children}
    new = []
    for s in states:
        parent.counts[s.text] = parent.counts.get(s.text, 0) + 1
        if s.text not in by_text:
            by_text[s.text] = Node(s)
            parent.children.append(by_text[s.text])
            new.append(by_text[s.text])
    parent.samples += len(states)
    parent.expansions += 1
    for ch in parent.children:
        ch.prior = parent.counts[ch.state.text] / parent.samples
    return new


def most_visited_leaf(root: Node) -> Node:
    node = root
    while node.children:
        node = max(node.children, key=lambda ch: (ch.visits, ch.q(), -ch.state.order))
    return node


def mcts(prompts, generator, scorer, params: dict, task: SearchTask, n: int) -> list[SearchResult]:
    rollouts = int(params["rollouts"] or n)
    k, c_base, c_init = int(params["expand"]), float(params["c_base"]), float(params["c_init"])
    widen = float(params["widen"])
    budget = Budget(generator, len(prompts), params["seed"])
    ext = Extender(budget, task, params)
    score = Scores(scorer, task, params["agg"])
    roots = [Node(s) for s in ext.roots(prompts)]
    expansions = [0] * len(prompts)
    descents = [0] * len(prompts)
    finished: list[list[State]] = [[] for _ in prompts]
    while True:
        leaves: list[tuple[int, list[Node]]] = []
        for i, root in enumerate(roots):
            while expansions[i] < rollouts and descents[i] < DESCENTS_PER_ROLLOUT * rollouts:
                descents[i] += 1
                path = select_path(root, c_base, c_init, widen)
                leaf = path[-1]
                if leaf.terminal or (leaf.expanded and not wants_widening(leaf, widen)):
                    backup(path, leaf.state.score if leaf.terminal else 0.0)  # finished leaf: descend again
                    continue
                leaves.append((i, path))
                expansions[i] += 1
                break
        if not leaves:
            break
        groups = ext.steps([(path[-1].state, k) for _, path in leaves])
        score([c for g in groups for c in g])
        for (i, path), states in zip(leaves, groups):
            new = merge_children(path[-1], states)
            finished[i] += [ch.state for ch in new if ch.terminal]
            backup(path, max((ch.state.score for ch in new), default=max(ch.q() for ch in path[-1].children)))
    complete = []
    for i, root in enumerate(roots):
        if not finished[i]:
            leaf = most_visited_leaf(root)
            if leaf.terminal:
                finished[i].append(leaf.state)
            else:
                complete.append(leaf.state)
    done = [s for g in ext.rollouts([(s, 1) for s in complete]) for s in g]
    score(done)
    for s in done:
        finished[s.owner].append(s)
    return [conclude(finished[i], [], params["select"], task, budget.spent(i)) for i in range(len(prompts))]
