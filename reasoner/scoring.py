"""The one step-scoring API used by decode (search) and RL: prompts + steps -> per-step scores.

    scorer = load_scorer(cfg.scorer, device)        # None for scorer.kind=none
    scores = scorer.score(prompts, steps)           # list[list[float]], every score in [0, 1]
    best = aggregate(scores[i], "min")              # min | last | prod | mean

Every scorer runs ONE forward pass per solution (all its steps at once), batched across
solutions (sorted by length to cut padding). Kinds:

- prm       discriminative PRM: P(+) at each step tag (`reasoner.prm.tokenization.encode_tagged`),
            from the '+'/'-' logits (tokens head) or sigmoid of a 1-logit head (scalar head).
- implicit  implicit PRM (PRIME): sigmoid(beta * sum of log pi/pi_ref over the step's tokens)
            ("step"), or over all tokens so far ("cumulative", a Q-value), per prm.json.
- value     a `models.ValueModel` (e.g. OREO's): V at the last token of each step, clipped to [0, 1].
- orm       outcome mode over any of the above: only the end of the solution is scored and every
            step gets that same score (so all aggregations equal it; no NaN). For a
            discriminative PRM it is the last tag's P(+); for an implicit PRM
            sigmoid(beta * log-ratio of the whole response), the quantity it was trained on.

Solutions longer than the scorer's context are cut on the left (the prompt's start goes
first); a step whose read position falls off is read at the first kept token.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from reasoner.errors import UserError
from reasoner.prm.path_cache import PathCache, PathNode, forward_cached, gather_past, tag_cells, takes_plain_cache

AGGREGATIONS = ("min", "last", "prod", "mean")
KINDS = ("none", "prm", "implicit", "value", "orm")


class StepScorer(Protocol):
    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """Per-step scores in [0, 1], one list per solution (prompt + steps joined by the separator)."""
        ...


def aggregate(scores: list[float], how: str = "last") -> float:
    """One number for a whole solution from its step scores (an empty solution scores 0)."""
    if how not in AGGREGATIONS:
        raise UserError(f"scorer.aggregate '{how}': must be one of {', '.join(AGGREGATIONS)}")
    if not scores:
        return 0.0
    if how == "min":
        return min(scores)
    if how == "last":
        return scores[-1]
    if how == "prod":
        return math.prod(scores)
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------- batching


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _context_limit(model) -> int:
    cfg = getattr(model, "config", None)
    return int(getattr(cfg, "max_position_embeddings", 0) or 0)


def _batched(seqs: list[list[int]], batch_size: int, pad_id: int, device,
             run: Callable[[torch.Tensor, torch.Tensor, list[int]], list[list[float]]]) -> list[list[float]]:
    """Call run(ids, mask, indices) on length-sorted, right-padded batches; results in input order."""
    from reasoner.utils.train import pad_batch

    out: list[list[float] | None] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for start in range(0, len(order), max(1, batch_size)):
        idx = order[start:start + max(1, batch_size)]
        ids, mask = pad_batch([seqs[i] for i in idx], pad_id)
        for i, res in zip(idx, run(ids.to(device), mask.to(device), idx)):
            out[i] = res
    return out  # type: ignore[return-value]


def _flat_index(groups: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [r for r, g in enumerate(groups) for _ in g]
    cols = [c for g in groups for c in g]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


def _split(values: list[float], groups: list[list]) -> list[list[float]]:
    out, k = [], 0
    for g in groups:
        out.append(values[k:k + len(g)])
        k += len(g)
    return out


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


# --------------------------------------------------------------------------- scorers


class DiscriminativeScorer:
    """P(+) at each step tag, from a PRM model (tokens head) or a ValueModel (scalar head).

    Search scores a beam's children every round: each is its parent plus one step. A tokens-head
    PRM that takes a KV cache keeps the K/V of scored solutions (`PathCache`), so a solution
    whose prefix was scored before runs only its new steps, and a round's prompts run once.
    `kv_cache_bytes` bounds that store (0: off, every solution runs in full).
    """

    def __init__(self, model, tokenizer, spec, batch_size: int = 32, kv_cache_bytes: int = 256 * 2**20):
        from reasoner.models import ValueModel
        from reasoner.prm.model import token_id

        self.model, self.tokenizer, self.spec, self.batch_size = model, tokenizer, spec, batch_size
        scalar = isinstance(model, ValueModel)
        self.pos_id = None if scalar else token_id(tokenizer, spec.positive_token, "prm.positive_token")
        self.neg_id = None if scalar else token_id(tokenizer, spec.negative_token, "prm.negative_token")
        self._cache: dict = {}
        self._paths = PathCache(kv_cache_bytes) if kv_cache_bytes > 0 and not scalar else None
        self._can_extend: bool | None = None

    def encode(self, prompt: str, steps: list[str]):
        from reasoner.prm.tokenization import encode_tagged

        return encode_tagged(self.tokenizer, prompt, steps, self.spec.step_tag, self.spec.step_separator,
                             cache=self._cache)

    @torch.inference_mode()
    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        _check_shapes(prompts, steps)
        if self._paths is None or not self._extendable():
            return self._score_full(prompts, steps)
        return self._score_paths(prompts, steps)

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return [s[-1] if s else 0.0 for s in self.score(prompts, steps)]

    # ------------------------------------------------------------ full passes

    def _score_full(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """One forward per solution over prompt + all its tagged steps."""
        from reasoner.prm.losses import step_probability
        from reasoner.prm.model import tag_logits
        from reasoner.prm.tokenization import keep_last

        limit = _context_limit(self.model)
        enc = [self.encode(p, s) for p, s in zip(prompts, steps)]
        seqs, positions = [], []
        for e in enc:
            ids, cut = keep_last(e.input_ids, limit)
            seqs.append(ids)
            positions.append([max(p - cut, 0) for p in e.positions])

        def run(ids, mask, idx):
            groups = [positions[i] for i in idx]
            if not any(groups):
                return [[] for _ in idx]
            rows, cols = _flat_index(groups)
            pos, neg = tag_logits(self.model, ids, mask, rows.to(ids.device), cols.to(ids.device), self.pos_id, self.neg_id)
            return _split(step_probability(pos, neg).cpu().tolist(), groups)

        return _batched(seqs, self.batch_size, _pad_id(self.tokenizer), _device(self.model), run)

    # ------------------------------------------------ incremental (cached K/V)

    def _extendable(self) -> bool:
        """Whether the PRM's decoder takes a plain full-attention KV cache and positions."""
        if self._can_extend is None:
            self._can_extend = takes_plain_cache(self.model)
        return self._can_extend

    def _score_paths(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """Scores from the path cache: run only what no earlier call ran (prompts once each,
        then each solution's steps after its longest scored prefix); solutions too long for the
        context go through the full pass (it cuts them on the left)."""
        from reasoner.prm.tokenization import prompt_ids

        self._paths.check(self.model)
        limit = _context_limit(self.model)
        keys = list(dict.fromkeys((p, tuple(s)) for p, s in zip(prompts, steps)))
        roots = [p for p in dict.fromkeys(k[0] for k in keys) if self._paths.get((p, ())) is None]
        roots = [(p, prompt_ids(self.tokenizer, p)) for p in roots]
        made = self._extend([(None, [((p, ()), ids, False)]) for p, ids in roots if not limit or len(ids) <= limit])
        todo, full, got = [], [], {}
        for key in keys:
            node, pieces = self._plan(key, made)
            if node is None or (limit and node.length + sum(len(ids) for _, ids, _ in pieces) > limit):
                full.append(key)
            elif not pieces:
                got[key] = node.scores
            else:
                todo.append((node, pieces))
        made = self._extend(todo)
        got.update((k, made[k].scores) for k in keys if k in made)
        if full:
            got.update(zip(full, self._score_full([k[0] for k in full], [list(k[1]) for k in full])))
        return [list(got[(p, tuple(s))]) for p, s in zip(prompts, steps)]

    def _plan(self, key, made: dict):
        """(deepest scored node on the solution's path, the (key, ids, tagged) pieces after it);
        (None, []) when not even the prompt is cached."""
        from reasoner.prm.tokenization import tagged_step_ids

        prompt, steps = key
        j, node = len(steps), None
        while node is None and j >= 0:
            sub = (prompt, steps[:j])
            node = made.get(sub) or self._paths.get(sub)
            j -= 1
        if node is None:  # the prompt alone is too long for the context
            return None, []
        pieces = [((prompt, steps[:i + 1]), tagged_step_ids(self.tokenizer, steps[i], self.spec.step_tag,
                                                            self.spec.step_separator, i == 0, self._cache), True)
                  for i in range(j + 1, len(steps))]
        return node, pieces

    def _extend(self, items: list) -> dict:
        """Run (parent node or None, pieces) items in batches; a node per piece, stored and
        returned by key. Sorted by new tokens (their padding is computed, the past's is not);
        a batch takes as many rows as keep its tokens within what batch_size full solutions
        of its length would run, so a round's short tails go in one or two forwards."""
        made: dict = {}
        span = [sum(len(ids) for _, ids, _ in pieces) for _, pieces in items]
        past = [parent.length if parent else 0 for parent, _ in items]
        order = sorted(range(len(items)), key=lambda i: (span[i], past[i]))
        batch, width, most = [], 0, 0
        for i in order:
            w, t = max(width, past[i]), max(most, span[i])
            if batch and (len(batch) + 1) * t > max(1, self.batch_size) * (w + t):
                self._extend_batch([items[j] for j in batch], made)
                batch, w, t = [], past[i], span[i]
            batch.append(i)
            width, most = w, t
        if batch:
            self._extend_batch([items[j] for j in batch], made)
        return made

    def _extend_batch(self, items: list, made: dict) -> None:
        """One forward over the items' new tokens (right-padded) after their parents' K/V
        (left-padded), positions continuing each parent's."""
        from reasoner.prm.losses import step_probability
        from reasoner.prm.model import head_tag_logits

        device = _device(self.model)
        parents = [parent for parent, _ in items]
        tails = [[t for _, ids, _ in pieces for t in ids] for _, pieces in items]
        lengths = [p.length if p else 0 for p in parents]
        width, span = max(lengths), max(len(t) for t in tails)
        ids = torch.full((len(items), span), _pad_id(self.tokenizer), dtype=torch.long)
        mask = torch.zeros((len(items), width + span), dtype=torch.long)
        for r, (tail, n) in enumerate(zip(tails, lengths)):
            ids[r, :len(tail)] = torch.tensor(tail, dtype=torch.long)
            mask[r, width - n:width + len(tail)] = 1
        pos = torch.tensor(lengths)[:, None] + torch.arange(span)[None, :]
        hidden, layers = forward_cached(self.model, ids.to(device), mask.to(device), pos.to(device),
                                         gather_past(parents, width) if width else None)
        rows, cols = tag_cells(items)
        probs = []
        if rows:
            h = hidden[torch.tensor(rows), torch.tensor(cols)]
            probs = step_probability(*head_tag_logits(self.model, h, self.pos_id, self.neg_id)).cpu().tolist()
        self._store(items, layers, width, iter(probs), made)

    def _store(self, items: list, layers, width: int, probs, made: dict) -> None:
        """A node per piece, with its parent's scores plus its own and a view of its K/V in the
        row's new tokens, copied out of the batch once per row (so the batch can be freed)."""
        for r, (parent, pieces) in enumerate(items):
            end = width + sum(len(piece) for _, piece, _ in pieces)
            own = [(x.keys[r, :, width:end].clone(), x.values[r, :, width:end].clone()) for x in layers]
            node, k = parent, 0
            for key, piece, tagged in pieces:
                kv = [(keys[:, k:k + len(piece)], values[:, k:k + len(piece)]) for keys, values in own]
                scores = (node.scores if node else []) + ([next(probs)] if tagged else [])
                node = PathNode(node, kv, (node.length if node else 0) + len(piece), scores)
                self._paths.put(key, node)
                made[key] = node
                k += len(piece)


class _SpanScorer:
    """Shared by scorers that read the policy's own text: prompt + separator-joined steps."""

    separator: str

    def _encode(self, prompts, steps, limit):
        from reasoner.prm.tokenization import encode_spans, keep_last

        _check_shapes(prompts, steps)
        seqs, spans = [], []
        for p, s in zip(prompts, steps):
            e = encode_spans(self.tokenizer, p, s, self.separator, cache=self._cache)
            ids, cut = keep_last(e.input_ids, limit)
            seqs.append(ids)
            spans.append([(max(a - cut, 1), max(b - cut, 1)) for a, b in e.spans])
        return seqs, spans


class ImplicitScorer(_SpanScorer):
    """Implicit PRM: beta * summed log-ratio to the reference over each step's tokens."""

    def __init__(self, model, reference, tokenizer, spec, batch_size: int = 32):
        self.model, self.reference, self.tokenizer, self.spec = model, reference, tokenizer, spec
        self.separator, self.batch_size, self._cache = spec.step_separator, batch_size, {}

    @torch.inference_mode()
    def step_rewards(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """beta * sum over each step's tokens of (log pi - log pi_ref), unsquashed."""
        from reasoner.prm.model import position_logprobs, reference_logprobs

        seqs, spans = self._encode(prompts, steps, _context_limit(self.model))

        def run(ids, mask, idx):
            groups = [[j for a, b in spans[i] for j in range(a, b)] for i in idx]
            if not any(groups):
                return [[0.0] * len(spans[i]) for i in idx]
            rows, cols = _flat_index(groups)
            rows, cols = rows.to(ids.device), cols.to(ids.device)
            ratio = position_logprobs(self.model, ids, mask, rows, cols) - reference_logprobs(self.reference, ids, mask, rows, cols)
            per_token = _split((self.spec.beta * ratio).cpu().tolist(), groups)
            out = []
            for i, toks in zip(idx, per_token):
                k, sums = 0, []
                for a, b in spans[i]:
                    sums.append(sum(toks[k:k + b - a]))
                    k += b - a
                out.append(sums)
            return out

        return _batched(seqs, self.batch_size, _pad_id(self.tokenizer), _device(self.model), run)

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        out = []
        for rewards in self.step_rewards(prompts, steps):
            if self.spec.implicit_score == "cumulative":
                rewards = [sum(rewards[:i + 1]) for i in range(len(rewards))]
            out.append([_sigmoid(r) for r in rewards])
        return out

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return [_sigmoid(sum(r)) if r else 0.0 for r in self.step_rewards(prompts, steps)]


class ValueScorer(_SpanScorer):
    """A ValueModel's V at the last token of each step (the state after it), clipped to [0, 1]."""

    def __init__(self, model, tokenizer, separator: str = "\n", batch_size: int = 32):
        self.model, self.tokenizer, self.separator, self.batch_size, self._cache = model, tokenizer, separator, batch_size, {}

    @torch.inference_mode()
    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        seqs, spans = self._encode(prompts, steps, _context_limit(self.model))

        def run(ids, mask, idx):
            values = self.model(ids, mask).clamp(0.0, 1.0).cpu()
            return [[float(values[r, b - 1]) for _a, b in spans[i]] for r, i in enumerate(idx)]

        return _batched(seqs, self.batch_size, _pad_id(self.tokenizer), _device(self.model), run)

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return [s[-1] if s else 0.0 for s in self.score(prompts, steps)]


class OutcomeScorer:
    """ORM mode: score only the end; every step of a solution carries that one score."""

    def __init__(self, inner):
        self.inner = inner

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        outcome = self.inner.score_outcome(prompts, steps)
        return [[o] * len(s) for o, s in zip(outcome, steps)]

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return self.inner.score_outcome(prompts, steps)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _check_shapes(prompts, steps) -> None:
    if len(prompts) != len(steps):
        raise ValueError(f"score(): {len(prompts)} prompts but {len(steps)} step lists")


# --------------------------------------------------------------------------- loading


def scorer_from_prm(loaded, batch_size: int = 32):
    """The StepScorer of an already loaded PRM (`reasoner.prm.model.LoadedPRM`)."""
    if loaded.spec.kind == "implicit":
        return ImplicitScorer(loaded.model, loaded.reference, loaded.tokenizer, loaded.spec, batch_size)
    return DiscriminativeScorer(loaded.model, loaded.tokenizer, loaded.spec, batch_size)


def _fallback_spec(scorer_cfg, kind: str):
    from reasoner.prm.model import PRMSpec

    prm = scorer_cfg.prm
    return PRMSpec(kind=kind, head=prm.head, step_tag=prm.step_tag, positive_token=prm.positive_token,
                   negative_token=prm.negative_token, step_separator=_separator(scorer_cfg),
                   beta=float(prm.beta), implicit_score=getattr(prm, "implicit_score", None) or "step",
                   reference=None).validate("scorer.prm")


def _separator(scorer_cfg) -> str:
    sep = getattr(scorer_cfg.prm, "step_separator", None)
    return "\n" if sep is None else sep


def _is_value_dir(path) -> bool:
    from pathlib import Path

    from reasoner.models import VALUE_HEAD_FILE
    from reasoner.prm.model import read_spec

    return (Path(path) / VALUE_HEAD_FILE).is_file() and read_spec(path) is None


def load_scorer(scorer_cfg, device=None) -> StepScorer | None:
    """The StepScorer that `scorer_cfg` (config.ScorerConfig) describes; None for kind=none.

    A directory written by `reasoner train-prm` carries prm.json, which decides tag, tokens,
    separator and beta; `scorer.prm.*` is used only for directories without one (a plain HF
    PRM such as a Math-Shepherd-style model), except `scorer.prm.implicit_score` which, when
    set, overrides how an implicit PRM's steps are read. kind=value takes a `ValueModel` directory;
    kind=orm wraps whichever of the three the directory holds.
    """
    from pathlib import Path

    from reasoner.models import ValueModel, load_tokenizer
    from reasoner.config import ModelConfig
    from reasoner.prm.model import load_prm, read_spec

    kind = scorer_cfg.kind
    if kind not in KINDS:
        raise UserError(f"scorer.kind '{kind}': must be one of {', '.join(KINDS)}")
    aggregate([], scorer_cfg.aggregate)  # validates the name early
    if kind == "none":
        return None
    if not scorer_cfg.path:
        raise UserError(f"scorer.path is required for scorer.kind={kind} (a directory from reasoner train-prm)")
    path = Path(scorer_cfg.path).expanduser()
    if not path.is_dir():
        raise UserError(f"scorer.path '{scorer_cfg.path}': no such directory")
    device = device if device is not None else "auto"
    batch = scorer_cfg.batch_size
    if kind == "value" or (kind == "orm" and _is_value_dir(path)):
        if not _is_value_dir(path):
            raise UserError(f"scorer.path '{scorer_cfg.path}': not a value-model directory (no value_head.safetensors)")
        model = ValueModel.load(path, device).requires_grad_(False).eval()
        tok = load_tokenizer(ModelConfig(name_or_path=str(path)))
        inner = ValueScorer(model, tok, _separator(scorer_cfg), batch)
        return OutcomeScorer(inner) if kind == "orm" else inner
    spec = read_spec(path)
    if spec is not None and kind in ("prm", "implicit") and spec.kind != {"prm": "discriminative", "implicit": "implicit"}[kind]:
        other = "implicit" if spec.kind == "implicit" else "prm"
        raise UserError(f"scorer.path '{scorer_cfg.path}' holds a {spec.kind} PRM; use scorer.kind={other} (or orm)")
    fallback = _fallback_spec(scorer_cfg, "implicit" if kind == "implicit" else "discriminative")
    if spec is None and fallback.kind == "implicit":
        raise UserError(f"scorer.path '{scorer_cfg.path}': an implicit PRM needs the prm.json and reference/ that train-prm writes")
    loaded = load_prm(path, device, fallback=fallback)
    override = getattr(scorer_cfg.prm, "implicit_score", None)
    if override:  # a scoring-time choice: read the same implicit PRM as step rewards or as a Q-value
        loaded.spec.implicit_score = override
        loaded.spec.validate("scorer.prm")
    inner = scorer_from_prm(loaded, batch)
    return OutcomeScorer(inner) if kind == "orm" else inner
