"""Step-level beam search, diverse verifier tree search (DVTS) and OREO's value-guided beam search.

All problems of a batch advance in lockstep: one round = one batched generate() call for every
kept beam of every problem (a beam's M expansions are one prompt with n=M, sharing its prefix)
and one batched scorer call for every new state.
"""

from __future__ import annotations

import math

from reasoner.search.base import Budget, SearchResult, SearchTask
from reasoner.search.states import Extender, Scores, State, conclude, dedupe, ranked


def split_evenly(total: int, parts: int) -> list[int]:
    """total expansions over `parts` beams, best beams taking the remainder."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def beam_rounds(prompts: list[str], generator, scorer, params: dict, task: SearchTask, total: int,
                width: int) -> list[SearchResult]:
    """search-and-learn's beam search: each round keeps the top total//width unfinished beams by
    score and spends `total` step samples on them (width each); finished beams leave for the
    pool; stop once a problem has `total` finished beams or none left to grow."""
    budget = Budget(generator, len(prompts), params["seed"])
    ext = Extender(budget, task, params)
    score = Scores(scorer, task, params["agg"])
    keep = max(1, total // max(1, width))
    active: list[list[State]] = [[root] for root in ext.roots(prompts)]
    done: list[list[State]] = [[] for _ in prompts]
    for _ in range(int(params["max_steps"])):
        requests = []
        for i in range(len(prompts)):
            if len(done[i]) < total and active[i]:
                kept = active[i][:keep]
                requests += list(zip(kept, split_evenly(total, len(kept))))
        if not requests:
            break
        children = [c for group in ext.steps(requests) for c in group]
        if params["dedupe"]:
            children = dedupe(children)
        score(children)
        active = [[] for _ in prompts]
        for c in children:
            (done if c.finished else active)[c.owner].append(c)
        active = [ranked(a) for a in active]
    return [conclude(done[i], active[i], params["select"], task, budget.spent(i)) for i in range(len(prompts))]


def beam(prompts, generator, scorer, params: dict, task: SearchTask, n: int) -> list[SearchResult]:
    """N = n beams, beam width M = params.width (N/M beams kept, each expanded M times)."""
    return beam_rounds(prompts, generator, scorer, params, task, n, min(int(params["width"]), n))


def value_beam(prompts, generator, scorer, params: dict, task: SearchTask, n: int) -> list[SearchResult]:
    """OREO: B beams, each expanded B times (B^2 candidates), top B by value kept.

    B = params.beams, or round(sqrt(n)) so the candidates per round stay close to the budget n.
    """
    b = int(params["beams"] or max(1, round(math.sqrt(n))))
    return beam_rounds(prompts, generator, scorer, params, task, b * b, b)


def dvts(prompts, generator, scorer, params: dict, task: SearchTask, n: int) -> list[SearchResult]:
    """Diverse verifier tree search: n//M independent subtrees, each sampling M next steps per
    round and keeping only its best child, until that child finishes; one answer per subtree."""
    width = min(int(params["width"]), n)
    trees = max(1, n // width)
    budget = Budget(generator, len(prompts), params["seed"])
    ext = Extender(budget, task, params)
    score = Scores(scorer, task, params["agg"])
    heads: list[State] = [root for root in ext.roots(prompts) for _ in range(trees)]
    for _ in range(int(params["max_steps"])):
        live = [t for t, h in enumerate(heads) if not h.finished]
        if not live:
            break
        groups = ext.steps([(heads[t], width) for t in live])
        score([c for g in groups for c in g])
        for t, g in zip(live, groups):
            if g:
                heads[t] = ranked(g)[0]
    results = []
    for i in range(len(prompts)):
        mine = heads[i * trees:(i + 1) * trees]
        finished = [h for h in mine if h.finished]
        results.append(conclude(finished, [h for h in mine if h.text], params["select"], task, budget.spent(i)))
    return results
