"""The registry of search methods and their parameters (`conf/search/NAME.yaml` -> params).

A method is `fn(prompts, generator, scorer, params, task, n) -> list[SearchResult]`: prompts are
templated texts, `scorer` a reasoner.scoring.StepScorer (None for majority vote), `params` the
method's resolved knobs, `task` a SearchTask, n the budget (samples, beams or MCTS rollouts).
Unknown or ill-typed params stop with one line naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from reasoner.errors import UserError
from reasoner.search.beam import beam, dvts, value_beam
from reasoner.search.mcts import mcts
from reasoner.search.pool import run_pool

AGGREGATES = ("min", "last", "prod", "mean")
SELECT_MODES = ("best", "vote")

# Every method takes these; None means "from the decode config" (generation.* / scorer.aggregate).
COMMON: dict[str, Any] = {"temperature": 0.8, "top_p": None, "max_new_tokens": None, "seed": None,
                          "stop": None, "agg": None}
STEP = {"max_step_tokens": None, "max_steps": 40, "select": "best"}

TYPES: dict[str, type] = {
    "temperature": float, "top_p": float, "max_new_tokens": int, "seed": int, "stop": list, "agg": str,
    "max_step_tokens": int, "max_steps": int, "select": str, "width": int, "dedupe": bool, "beams": int,
    "rollouts": int, "expand": int, "c_base": float, "c_init": float, "widen": float,
}
POSITIVE = {"max_new_tokens", "max_step_tokens", "max_steps", "width", "beams", "rollouts", "expand", "c_base"}


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable
    defaults: dict
    needs_scorer: bool
    pool_mode: str | None = None  # sample-then-select methods: how the pool is chosen from
    fixed: tuple[str, ...] = ()  # params the method pins (OpenR's PRM-min-max pins agg=min)
    summary: str = ""

    def __call__(self, prompts, generator, scorer, params: dict, task, n: int):
        return self.fn(prompts, generator, scorer, params, task, n)


def _pool(mode: str) -> Callable:
    def fn(prompts, generator, scorer, params, task, n):
        return run_pool(prompts, generator, scorer, params, task, n, mode)

    return fn


def _openr(agg: str, mode: str, label: str) -> Method:
    name = f"prm_{agg}_{'max' if mode == 'best' else 'vote'}"
    return Method(name, _pool(mode), {**COMMON, "agg": agg}, True, mode, ("agg",),
                  f"OpenR {label}: best-of-N with agg={agg}, {'highest score' if mode == 'best' else 'score-weighted vote'}")


SEARCH_METHODS: dict[str, Method] = {
    m.name: m for m in [
        Method("majority", _pool("majority"), dict(COMMON), False, "majority",
               summary="n samples, the most frequent answer (self-consistency)"),
        Method("best_of_n", _pool("best"), dict(COMMON), True, "best",
               summary="n samples, the highest aggregated step score (ORM: scorer.kind=orm)"),
        Method("weighted_best_of_n", _pool("vote"), dict(COMMON), True, "vote",
               summary="n samples, the answer with the largest summed score"),
        _openr("min", "best", "PRM-min-max"),
        _openr("min", "vote", "PRM-min-vote"),
        _openr("last", "best", "PRM-last-max"),
        _openr("last", "vote", "PRM-last-vote"),
        Method("beam", beam, {**COMMON, **STEP, "width": 4, "dedupe": True}, True,
               summary="step-level beam search: n beams, n/width kept and expanded width times per step"),
        Method("dvts", dvts, {**COMMON, **STEP, "width": 4}, True,
               summary="diverse verifier tree search: n/width subtrees, each keeps its best child per step"),
        Method("value_beam", value_beam, {**COMMON, **STEP, "agg": "last", "beams": None, "dedupe": True}, True,
               summary="OREO value-guided beam: B beams x B expansions, top B by value (B = round(sqrt(n)))"),
        Method("mcts", mcts, {**COMMON, "max_step_tokens": None, "select": "best", "rollouts": None, "expand": 4,
                              "c_base": 19652.0, "c_init": 1.25, "widen": 0.5}, True,
               summary="MCTS with PUCT: n rollouts, each expanding a leaf by `expand` sampled steps"),
    ]
}


def get_method(name: str) -> Method:
    if name not in SEARCH_METHODS:
        raise UserError(f"config: search '{name}' is unknown (choose from sample, {', '.join(SEARCH_METHODS)})")
    return SEARCH_METHODS[name]


def _typed(method: str, key: str, value: Any) -> Any:
    """value coerced to the key's type, or a one-line UserError."""
    want = TYPES[key]
    where = f"search.params.{key}"
    if value is None:
        return None
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    elif want is list and isinstance(value, (list, tuple)):
        value = [str(v) for v in value]
    elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise UserError(f"{where}: expected {want.__name__} for search '{method}', got {value!r}")
    if key in POSITIVE and value <= 0:
        raise UserError(f"{where}: must be > 0 (got {value})")
    if key in ("temperature", "widen") and value < 0:
        raise UserError(f"{where}: must be >= 0 (got {value})")
    if key == "top_p" and not 0 < value <= 1:
        raise UserError(f"{where}: must be in (0, 1] (got {value})")
    if key == "agg" and value not in AGGREGATES:
        raise UserError(f"{where}: must be one of {', '.join(AGGREGATES)} (got '{value}')")
    if key == "select" and value not in SELECT_MODES:
        raise UserError(f"{where}: must be one of {', '.join(SELECT_MODES)} (got '{value}')")
    return value


def check_params(name: str, params: dict | None) -> dict:
    """The method's defaults overlaid with `params`; unknown, pinned or ill-typed keys raise."""
    method = get_method(name)
    params = dict(params or {})
    for key in params:
        if key not in method.defaults:
            raise UserError(f"search.params.{key}: unknown parameter of search '{name}' "
                            f"(known: {', '.join(sorted(method.defaults))})")
        if key in method.fixed and params[key] != method.defaults[key]:
            raise UserError(f"search.params.{key}: search '{name}' fixes {key}={method.defaults[key]}")
    merged = {**method.defaults, **params}
    return {k: _typed(name, k, v) for k, v in merged.items()}


def resolve_params(name: str, params: dict | None, generation=None, scorer=None) -> dict:
    """check_params, then None knobs filled from the decode config: top_p, max_new_tokens, seed and
    stop from `generation` (GenerationConfig), agg from `scorer` (ScorerConfig)."""
    out = check_params(name, params)
    fill = {"top_p": 1.0, "max_new_tokens": 256, "seed": 0, "stop": [], "agg": "last"}
    if generation is not None:
        fill.update(top_p=generation.top_p, max_new_tokens=generation.max_new_tokens, seed=generation.seed,
                    stop=list(generation.stop))
    if scorer is not None:
        fill["agg"] = scorer.aggregate
    for key, value in fill.items():
        if key in out and out[key] is None:
            out[key] = _typed(name, key, value)
    return out

