"""Sample-then-select methods: majority vote, (weighted) best-of-N, OpenR's PRM-{min,last}-{max,vote}.

All of them draw n full solutions per problem (one call, n samples sharing the prompt's
prefill) and differ only in how one is chosen, so a budget sweep can draw the largest pool once
and evaluate every method and every smaller n on its prefixes (`select_prefix`).
"""

from __future__ import annotations

from reasoner.search.base import Budget, SearchResult, SearchTask
from reasoner.search.states import Extender, Scores, State, conclude


def draw(prompts: list[str], generator, params: dict, task: SearchTask, n: int) -> tuple[list[list[State]], Budget]:
    """n sampled full solutions per prompt (states in sampling order) and the budget they cost."""
    budget = Budget(generator, len(prompts), params["seed"])
    ext = Extender(budget, task, params)
    pools = [[] for _ in prompts]
    for group in ext.rollouts([(root, n) for root in ext.roots(prompts)]):
        for s in group:
            pools[s.owner].append(s)
    return pools, budget


def select_prefix(pool: list[State], n: int, mode: str, task: SearchTask) -> SearchResult:
    """The method's choice among the first n samples of a scored pool, charged for those n only."""
    head = pool[:n]
    return conclude(head, [], mode, task, (len(head), sum(s.tokens for s in head)))


def run_pool(prompts, generator, scorer, params: dict, task: SearchTask, n: int, mode: str) -> list[SearchResult]:
    """Draw n samples per prompt, score them when the mode needs scores, choose one each."""
    pools, _ = draw(prompts, generator, params, task, n)
    if mode != "majority":
        Scores(scorer, task, params["agg"])([s for pool in pools for s in pool])
    return [select_prefix(pool, n, mode, task) for pool in pools]
