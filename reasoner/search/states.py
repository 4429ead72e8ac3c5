"""Partial solutions (states) and the three things searches do to them: extend, score, conclude.

A state is a problem's prompt plus the response text so far. Extending samples the next step
(generation stops at the task's step separator) or the whole rest of the solution; the many
requests of one round go out as one batched call whose prompts share their prefixes. Scoring
sends every new state of a round to the scorer in one call, deduplicated and cached, so a
prefix is scored once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reasoner.generation.base import SamplingParams
from reasoner.search.base import Budget, SearchResult, SearchTask
from reasoner.search.select import choose


@dataclass
class State:
    owner: int  # problem index in the batch
    prompt: str  # the prompt as sent
    text: str = ""  # response so far
    tokens: int = 0  # tokens generated along this path
    finish: str | None = None  # None while it can grow; "answer" | "eos" | "length"
    step_scores: list[float] = field(default_factory=list)
    score: float = 0.0
    order: int = 0  # creation order inside its problem: the tie-breaker

    @property
    def finished(self) -> bool:
        return self.finish is not None


def sampling(params: dict, max_tokens: int, stop: list[str]) -> SamplingParams:
    return SamplingParams(n=1, temperature=float(params["temperature"]), top_p=float(params["top_p"]),
                          max_new_tokens=max(1, int(max_tokens)), stop=list(stop))


class Extender:
    """Samples continuations of states and classifies the new states (finished or not)."""

    def __init__(self, budget: Budget, task: SearchTask, params: dict):
        self.budget, self.task, self.params = budget, task, params
        self.max_new_tokens = int(params["max_new_tokens"])
        self.max_step_tokens = int(params.get("max_step_tokens") or self.max_new_tokens)
        self._order: dict[int, int] = {}

    def roots(self, prompts: list[str]) -> list[State]:
        return [State(owner=i, prompt=p) for i, p in enumerate(prompts)]

    def steps(self, requests: list[tuple[State, int]]) -> list[list[State]]:
        """`count` sampled next steps for each (state, count); each becomes a child state."""
        requests = [(s, c) for s, c in requests if not s.finished]
        if not requests:
            return []
        room = max(self.max_new_tokens - s.tokens for s, _ in requests)
        params = sampling(self.params, min(self.max_step_tokens, room), [self.task.step_separator])
        outs = self.budget.request([(s.owner, s.prompt + s.text, c) for s, c in requests], params)
        return [[self._child(s, comp, step=True) for comp in comps] for (s, _), comps in zip(requests, outs)]

    def rollouts(self, requests: list[tuple[State, int]]) -> list[list[State]]:
        """`count` sampled completions to the end of the solution for each (state, count)."""
        requests = [(s, c) for s, c in requests if not s.finished]
        if not requests:
            return []
        room = max(self.max_new_tokens - s.tokens for s, _ in requests)
        params = sampling(self.params, room, list(self.params.get("stop") or []))
        outs = self.budget.request([(s.owner, s.prompt + s.text, c) for s, c in requests], params)
        return [[self._child(s, comp, step=False) for comp in comps] for (s, _), comps in zip(requests, outs)]

    def _child(self, parent: State, comp, step: bool) -> State:
        text = parent.text + comp.text
        sep_hit = step and comp.finish_reason == "stop" and comp.stop_reason == self.task.step_separator
        if sep_hit:
            text += self.task.step_separator
        tokens = parent.tokens + len(comp.token_ids)
        if self.task.committed(text):
            finish = "answer"
        elif comp.finish_reason == "length" or tokens >= self.max_new_tokens:
            finish = "length"
        elif not sep_hit:
            finish = "eos"  # ended by EOS (or, for a rollout, by the end of the text)
        else:
            finish = None
        if finish is not None and sep_hit:
            text = text[: -len(self.task.step_separator)]  # a finished response ends at its last step
        order = self._order.get(parent.owner, 0)
        self._order[parent.owner] = order + 1
        return State(parent.owner, parent.prompt, text, tokens, finish, order=order + 1)


class Scores:
    """Fills state.step_scores / state.score with one batched scorer call per round, cached by
    (prompt, steps) so duplicates and unchanged prefixes are not scored twice."""

    def __init__(self, scorer, task: SearchTask, agg: str):
        self.scorer, self.task, self.agg = scorer, task, agg
        self.cache: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self.calls = 0

    def __call__(self, states: list[State]) -> None:
        from reasoner.scoring import aggregate

        keyed = [(s, (s.prompt, tuple(self.task.steps(s.text)))) for s in states]
        todo = list(dict.fromkeys(k for _, k in keyed if k not in self.cache and k[1]))
        if todo and self.scorer is not None:
            got = self.scorer.score([k[0] for k in todo], [list(k[1]) for k in todo])
            self.calls += 1
            if len(got) != len(todo):
                raise RuntimeError(f"scorer returned {len(got)} score lists for {len(todo)} solutions")
            for k, sc in zip(todo, got):
                self.cache[k] = [float(x) for x in sc]
        for s, k in keyed:
            s.step_scores = self.cache.get(k, []) if k[1] else []
            s.score = float(aggregate(s.step_scores, self.agg)) if s.step_scores else 0.0


def dedupe(states: list[State]) -> list[State]:
    """Drop states whose response text repeats an earlier one of the same problem."""
    seen: set[tuple[int, str]] = set()
    out = []
    for s in states:
        key = (s.owner, s.text)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def ranked(states: list[State]) -> list[State]:
    """Best score first; ties keep creation order."""
    return sorted(states, key=lambda s: (-s.score, s.order))


def conclude(finished: list[State], fallback: list[State], mode: str, task: SearchTask,
             spent: tuple[int, int]) -> SearchResult:
    """The result for one problem: choose among finished states (else the unfinished ones);
    `spent` is the (generations, tokens) the problem cost."""
    pool = finished or fallback
    gens, toks = spent
    if not pool:
        return SearchResult(None, "", [], gens, toks)
    pool = sorted(pool, key=lambda s: s.order)
    answers = [task.answer(s.text) for s in pool]
    idx = choose(mode, answers, [s.score for s in pool], task.same)
    cands = [{"response": s.text, "answer": a, "score": round(s.score, 6), "finished": s.finished}
             for s, a in zip(pool, answers)]
    return SearchResult(answers[idx], pool[idx].text, cands, gens, toks)
