"""Search-based decoding (ALGORITHMS.md §4) over the Generator and StepScorer protocols.

    from reasoner.search import SEARCH_METHODS, SearchTask, resolve_params
    method = SEARCH_METHODS["beam"]
    results = method(prompts, generator, scorer, resolve_params("beam", {}), SearchTask(), n=8)

Methods: majority, best_of_n, weighted_best_of_n, prm_{min,last}_{max,vote}, beam, dvts,
value_beam, mcts (see methods.py); `sweep.py` runs accuracy-vs-budget sweeps over them.
"""

from reasoner.search.base import Budget, SearchResult, SearchTask
from reasoner.search.methods import SEARCH_METHODS, Method, check_params, get_method, resolve_params

__all__ = ["Budget", "Method", "SEARCH_METHODS", "SearchResult", "SearchTask", "check_params", "get_method",
           "resolve_params"]
