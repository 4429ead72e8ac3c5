"""Generation with a plain transformers model and our own decoding loop.

Why not `model.generate`: we need exact per-token logprobs of the raw logits (for RL), vLLM
stop-string semantics, prefix sharing for n > 1, and finished rows leaving the batch. The loop
is: expand each prompt n times, left-pad, prefill once per distinct prompt, replicate the cache
rows, then decode one token per step against the KV cache. With `prefix_cache=True` the K/V of
finished sequences are kept across calls (`prefix_cache.PrefixStore`), and a prompt that starts
with a remembered sequence only prefills its new tail (search extends its prompts step by step).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from reasoner.prompts import encode_prompt
from reasoner.generation.base import Completion, SamplingParams, check_params, find_stop
from reasoner.generation import lean_decode
from reasoner.generation.cpu_linear import PackedLinears
from reasoner.generation.kv_args import cache_kwargs, forward_parameters, returned_cache
from reasoner.generation.prefix_cache import PrefixStore, forget_if_weights_changed

try:  # transformers 5: the tokenizers-backed tokenizer class
    from transformers.tokenization_utils_tokenizers import TokenizersBackend
except ImportError:  # pragma: no cover - transformers 4.x: batch_decode is used as is
    TokenizersBackend = None

try:  # transformers 5: caches are lists of per-layer objects
    from transformers.cache_utils import DynamicLayer
except ImportError:  # pragma: no cover - transformers 4.x: plain DynamicCache only
    DynamicLayer = None


@dataclass
class _Group:
    """One distinct prompt inside a chunk and how many sequences it spawns there."""

    ids: list[int]
    count: int
    cached: int = 0  # leading tokens whose K/V come from the prefix store
    kv: list | None = None  # that store entry's per-layer K/V


@dataclass
class _Seq:
    """Per-sequence state of one chunk; `hist` is only filled when stop strings are in play."""

    end: int | None = None  # index of the last generated token once finished
    finish_reason: str = "length"
    stop_reason: str | None = None
    text: str | None = None  # set when a stop string cut it
    hist: list[int] = field(default_factory=list)


class HFGenerator:
    """`Generator` over a `PreTrainedModel` (optionally PEFT-wrapped) and its tokenizer.

    batch_size counts sequences (prompts x n). `compact_fraction`: drop finished rows from the
    batch (an index-select of the cache) once that fraction of the rows is done.
    `ignore_eos` keeps decoding past EOS (benchmarks want a fixed token count).
    `preallocate_cache` sizes the KV cache for prompt + max_new_tokens up front instead of
    growing it by concatenation every step.
    `prefix_cache` keeps the K/V of earlier sequences, up to `prefix_cache_tokens` tokens or, by
    default, as many as fit in `prefix_cache_mb` (a wide beam search stores every candidate of a
    round, e.g. 32 problems x 64 x 60 tokens, and misses whatever was evicted), and reuses them
    for prompts that start the same way. It assumes the weights only change in
    place (optimizer steps, load_state_dict: detected, the store is then cleared); call
    `clear_prefix_cache()` after anything else that changes the model's outputs (e.g. toggling
    a PEFT adapter).
    `fast_linear` runs CPU float32/bfloat16 linear layers on oneDNN-packed weights during
    generation (`cpu_linear`: 1.5-2x faster decode steps than MKL here, one extra copy of the
    weights); no effect on GPU.
    `lean_decode` runs decode steps of plain Llama/Qwen2 models through `lean_decode` (same
    modules and maths without the HF forward's per-token overhead) when the cache allows it.
    """

    def __init__(
        self,
        model,
        tokenizer,
        batch_size: int = 32,
        sort_by_length: bool = True,
        add_special_tokens: bool = True,
        compact_fraction: float = 0.125,
        ignore_eos: bool = False,
        preallocate_cache: bool = True,
        prefix_cache: bool = False,
        prefix_cache_tokens: int | None = None,
        prefix_cache_mb: float = 1024,
        fast_linear: bool = True,
        lean_decode: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length
        self.add_special_tokens = add_special_tokens
        self.compact_fraction = compact_fraction
        self.ignore_eos = ignore_eos
        self.preallocate_cache = preallocate_cache
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = _pad_id(tokenizer, self.eos_ids)
        self._logits_to_keep = _accepts_logits_to_keep(model)
        if prefix_cache and prefix_cache_tokens is None:
            prefix_cache_tokens = _tokens_in(prefix_cache_mb, model)
        self._prefix = PrefixStore(prefix_cache_tokens) if prefix_cache else None
        self._packed = PackedLinears(batch_size) if fast_linear else None
        self.lean_decode = lean_decode
        self._stop_memo: dict[tuple[str, ...], dict] = {}  # stops -> _StopChecker verdicts per id window

    # ------------------------------------------------------------------ public

    def clear_prefix_cache(self) -> None:
        """Forget every remembered sequence (no-op without a prefix cache)."""
        if self._prefix is not None:
            self._prefix.clear()

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """result[i] holds params.n completions of prompts[i], in order."""
        check_params(params)
        if not prompts:
            return []
        unique, owners = _dedupe(prompts)
        if self.add_special_tokens:
            encoded = [encode_prompt(self.tokenizer, text) for text in unique]  # same ids as training saw
        else:
            encoded = self.tokenizer(unique, add_special_tokens=False)["input_ids"]
        if any(len(ids) == 0 for ids in encoded):
            raise ValueError("a prompt encodes to no tokens; give it some text or a BOS token")
        per_unique: list[list[Completion]] = [[] for _ in unique]
        rng = self._rng(params.seed)
        was_training = self.model.training  # RL loops call us between optimizer steps
        self.model.eval()
        self._check_prefix_store()
        try:
            packed = self._packed.activate(self.model) if self._packed is not None else contextlib.nullcontext()
            with torch.inference_mode(), packed:
                lean = lean_decode.step_fn(self.model) if self.lean_decode else None  # once per call: it copies weights
                for chunk in self._plan(encoded, [len(o) * params.n for o in owners]):
                    done = iter(self._run_chunk([_Group(encoded[u], c) for u, c in chunk], params, rng, lean))
                    for u, c in chunk:
                        per_unique[u].extend(next(done) for _ in range(c))
        finally:
            self.model.train(was_training)
        return _scatter(prompts, owners, per_unique, params.n)

    # ---------------------------------------------------------------- planning

    def _plan(self, encoded: list[list[int]], counts: list[int]) -> list[list[tuple[int, int]]]:
        """Chunks of at most batch_size sequences, as (unique prompt, sequences) pairs.

        Longest prompts first so padding stays small and out-of-memory shows up early. (The
        order does not depend on the prefix cache, so seeded samples do not either.)
        """
        order = list(range(len(encoded)))
        if self.sort_by_length:
            order.sort(key=lambda u: -len(encoded[u]))
        chunks, cur, room = [], [], self.batch_size
        for u in order:
            left = counts[u]
            while left:
                take = min(left, room)
                cur.append((u, take))
                left -= take
                room -= take
                if room == 0:
                    chunks.append(cur)
                    cur, room = [], self.batch_size
        if cur:
            chunks.append(cur)
        return chunks

    # ---------------------------------------------------------------- decoding

    def _run_chunk(self, groups: list[_Group], params: SamplingParams, rng, lean) -> list[Completion]:
        """Prefill the distinct prompts once, fan out to sequences, decode until all finish
        (decode steps through `lean`, lean_decode's step for this call, where the cache allows)."""
        device = self._device()
        total = sum(g.count for g in groups)
        max_new = params.max_new_tokens
        seqs = [_Seq() for _ in range(total)]
        if max_new == 0:
            return [Completion("", [], [], "length") for _ in seqs]

        cache, logits, attn, pos = self._prefill(groups, max_new, device, lean)
        base = attn.shape[1]  # cache positions before the first generated token
        prompt_of = [g.ids for g in groups for _ in range(g.count)]  # sequence index -> prompt ids
        tokens = torch.empty(total, max_new, dtype=torch.long, device=device)
        logps = torch.empty(total, max_new, dtype=torch.float32, device=device)
        slots = torch.arange(total, device=device)  # batch row -> sequence index
        slot_list = list(range(total))
        eos = torch.tensor(self.eos_ids or [-1], device=device)
        stopper = None
        if params.stop:
            stopper = _StopChecker(self.tokenizer, params.stop, self._stop_memo.setdefault(tuple(params.stop), {}))
        live = total  # rows in the batch whose sequence is not finished
        lean = lean if _plain_layers(cache) else None

        for step in range(max_new):
            tok, lp = _sample(logits, params, rng)
            tok = tok.to(device)  # no-op unless the LM head sits on another device (device_map)
            tokens[slots, step] = tok
            logps[slots, step] = lp.to(device)
            live -= self._finish_rows(step, tok, eos, slot_list, seqs, stopper)
            if live == 0 or step == max_new - 1:
                break
            if len(slot_list) - live >= max(1, int(self.compact_fraction * len(slot_list))):
                keep = [r for r, s in enumerate(slot_list) if seqs[s].end is None]
                if self._prefix is not None:
                    gone = [r for r, s in enumerate(slot_list) if seqs[s].end is not None]
                    self._remember(cache, attn, base, gone, slot_list, seqs, tokens, prompt_of)
                keep_t = torch.tensor(keep, device=device)
                cache.batch_select_indices(keep_t)
                slots, tok, attn, pos = slots[keep_t], tok[keep_t], attn[keep_t], pos[keep_t]
                slot_list = [slot_list[r] for r in keep]
            attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=1)
            pos = pos + 1
            logits = self._decode(lean, tok, pos, attn, cache)
        for s in seqs:
            if s.end is None:
                s.end = max_new - 1
        if self._prefix is not None:
            self._remember(cache, attn, base, range(len(slot_list)), slot_list, seqs, tokens, prompt_of)
        return self._completions(seqs, tokens.cpu(), logps.cpu())

    def _decode(self, lean, tok, pos, attn, cache) -> torch.Tensor:
        """Logits [rows, V] of one new token per row, through the lean step when there is one."""
        if lean is not None:
            return lean(tok, pos, attn, cache)
        out = self.model(input_ids=tok[:, None], attention_mask=attn, position_ids=pos[:, None], **cache_kwargs(self.model, cache))
        return out.logits[:, -1, :]

    def _prefill(self, groups: list[_Group], max_new: int, device, lean):
        """One forward over the left-padded distinct prompts; rows then replicated per sequence.

        Prompts with a remembered prefix enter with that prefix's K/V already in the cache
        (right-aligned in a first block of width `cached`) and only their tails as input, so a
        row's cache reads [pad | cached prefix | pad | tail]; the attention mask hides the pads.
        When every tail is one token, that forward is a decode step (`lean` when given).
        """
        for g in groups:
            g.cached, g.kv = self._lookup(g.ids)
        cached = max(g.cached for g in groups)
        width = max(len(g.ids) - g.cached for g in groups)
        ids = torch.full((len(groups), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(groups), width), dtype=torch.long)
        for r, g in enumerate(groups):
            tail = g.ids[g.cached :]
            ids[r, width - len(tail) :] = torch.tensor(tail)
            attn[r, width - len(tail) :] = 1
        ids, attn = ids.to(device), attn.to(device)
        # positions count real tokens only, so left padding does not shift RoPE
        offset = torch.tensor([g.cached for g in groups], device=device)
        pos = (attn.cumsum(-1) - 1).clamp_(min=0) + offset[:, None]
        cache = _new_cache(self.model, cached + width + max_new if self.preallocate_cache else None)
        if cached:
            attn = torch.cat([self._load_prefixes(cache, groups, cached, device), attn], dim=1)
        if lean is not None and cached and width == 1 and _plain_layers(cache):
            logits = lean(ids[:, 0], pos[:, 0], attn, cache)
        else:
            kwargs = {"logits_to_keep": 1} if self._logits_to_keep else {}
            out = self.model(input_ids=ids, attention_mask=attn, position_ids=pos, **cache_kwargs(self.model, cache), **kwargs)
            cache = returned_cache(out, cache)
            logits = out.logits[:, -1, :]
        last_pos = pos[:, -1]
        counts = [g.count for g in groups]
        if any(c != 1 for c in counts):
            rows = torch.arange(len(groups), device=device).repeat_interleave(torch.tensor(counts, device=device))
            cache.batch_select_indices(rows)
            logits, attn, last_pos = logits[rows], attn[rows], last_pos[rows]
        return cache, logits, attn, last_pos

    # ------------------------------------------------------------ prefix cache

    def _check_prefix_store(self) -> None:
        """Drop remembered K/V computed with other weights (or when that cannot be told)."""
        if self._prefix is None:
            return
        forget_if_weights_changed(self._prefix, self.model)

    def _lookup(self, ids: list[int]) -> tuple[int, list | None]:
        """(tokens reusable from the store, their K/V); the last prompt token is always
        recomputed, since its logits start the generation."""
        if self._prefix is None:
            return 0, None
        hit = self._prefix.lookup(ids, limit=len(ids) - 1)
        if hit is None or hit[1] < 1:
            return 0, None
        return hit[1], hit[0]

    def _load_prefixes(self, cache, groups: list[_Group], cached: int, device) -> torch.Tensor:
        """Write each group's remembered K/V right-aligned into the first `cached` positions of
        every layer; returns their attention-mask block."""
        ref = next(g.kv for g in groups if g.cached)
        mask = torch.zeros((len(groups), cached), dtype=torch.long, device=device)
        for r, g in enumerate(groups):
            if g.cached:
                mask[r, cached - g.cached :] = 1
        for layer, (k_ref, v_ref) in enumerate(ref):
            keys = k_ref.new_zeros(len(groups), k_ref.shape[0], cached, k_ref.shape[-1])
            values = v_ref.new_zeros(len(groups), v_ref.shape[0], cached, v_ref.shape[-1])
            for r, g in enumerate(groups):
                if g.cached:
                    keys[r, :, cached - g.cached :] = g.kv[layer][0][:, : g.cached]
                    values[r, :, cached - g.cached :] = g.kv[layer][1][:, : g.cached]
            cache.update(keys, values, layer)
        return mask

    def _remember(self, cache, attn, base, rows, slot_list, seqs, tokens, prompt_of) -> None:
        """Store the K/V of finished rows: prompt + generated ids except the last (never fed)."""
        layers = getattr(cache, "layers", None)
        if DynamicLayer is None or not layers or not all(isinstance(x, DynamicLayer) for x in layers):
            return  # sliding-window / hybrid caches: positions are not plain, do not reuse
        for r in rows:
            s = slot_list[r]
            end = seqs[s].end
            valid = attn[r, : base + end].nonzero().squeeze(1)
            ids = prompt_of[s] + tokens[s, :end].tolist()
            if len(ids) != valid.numel():  # pragma: no cover - layout invariant
                raise RuntimeError(f"prefix cache: {len(ids)} ids but {valid.numel()} cached positions")
            kv = [(x.keys[r].index_select(1, valid), x.values[r].index_select(1, valid)) for x in layers]
            self._prefix.add(ids, kv)

    def _finish_rows(self, step, tok, eos, slot_list, seqs, stopper) -> int:
        """Mark sequences ended by EOS or a stop string at this step; returns how many ended."""
        ended = 0
        if not self.ignore_eos and self.eos_ids:
            for r in torch.isin(tok, eos).nonzero().flatten().tolist():
                s = seqs[slot_list[r]]
                if s.end is None:
                    s.end, s.finish_reason = step, "stop"
                    ended += 1
        if stopper is not None:
            ended += stopper.check(step, tok.tolist(), slot_list, seqs)
        return ended

    def _completions(self, seqs: list[_Seq], tokens, logps) -> list[Completion]:
        """Turn finished sequence states into Completions (one batched decode for the text)."""
        ids = [tokens[i, : s.end + 1].tolist() for i, s in enumerate(seqs)]
        need = [i for i, s in enumerate(seqs) if s.text is None]
        visible = [ids[i][:-1] if _ended_by_eos(seqs[i]) else ids[i] for i in need]
        texts = decode_batch(self.tokenizer, visible) if need else []
        for i, text in zip(need, texts):
            seqs[i].text = text
        return [
            Completion(s.text, ids[i], logps[i, : s.end + 1].tolist(), s.finish_reason, s.stop_reason)
            for i, s in enumerate(seqs)
        ]

    # ----------------------------------------------------------------- helpers

    def _device(self) -> torch.device:
        emb = self.model.get_input_embeddings()
        return emb.weight.device if emb is not None else next(self.model.parameters()).device

    def _rng(self, seed: int | None):
        """Seeded generator on the device where logits land (the LM head's)."""
        if seed is None:
            return None
        head = self.model.get_output_embeddings()
        gen = torch.Generator(device=head.weight.device if head is not None else self._device())
        gen.manual_seed(int(seed))
        return gen


class _StopChecker:
    """Incremental stop-string detection on a short decoded tail per sequence.

    A stop string of b UTF-8 bytes overlaps at most b tokens (each token adds >= 1 byte), so
    decoding the last b + 2 tokens is enough; a hit is confirmed on the full text, which is what
    gets cut, so the tail is only a cheap filter. Its verdict per window of ids is remembered
    in `memo` (shared across calls with the same stops): search decodes a few tokens per
    sequence per call, and the same windows come back again and again.
    """

    MEMO_LIMIT = 100_000

    def __init__(self, tokenizer, stops: list[str], memo: dict | None = None):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.window = max(len(s.encode("utf-8")) for s in self.stops) + 2 if self.stops else 0
        self.memo = {} if memo is None else memo

    def check(self, step: int, toks: list[int], slot_list: list[int], seqs: list[_Seq]) -> int:
        rows = []
        for r, t in enumerate(toks):
            s = seqs[slot_list[r]]
            if s.end is None or s.end == step:
                s.hist.append(t)
            if s.end is None:
                rows.append(s)
        if not rows or not self.stops:
            return 0
        windows = [tuple(s.hist[-self.window :]) for s in rows]
        if len(self.memo) > self.MEMO_LIMIT:  # stay bounded over a long run
            self.memo.clear()
        self._judge([w for w in dict.fromkeys(windows) if w not in self.memo])
        rows = [s for s, w in zip(rows, windows) if self.memo[w]]
        if not rows:
            return 0
        ended = 0  # confirm on the full texts, decoded in one call (search ends many rows per step)
        for s, full in zip(rows, decode_batch(self.tokenizer, [s.hist for s in rows])):
            hit = find_stop(full, self.stops)
            if hit is not None:
                s.end, s.finish_reason, s.stop_reason, s.text = step, "stop", hit[1], full[: hit[0]]
                ended += 1
        return ended

    def _judge(self, windows: list[tuple[int, ...]]) -> None:
        """Decode unseen windows (one call) and remember whether each holds a stop string."""
        if not windows:
            return
        tails = decode_batch(self.tokenizer, [list(w) for w in windows])
        for w, tail in zip(windows, tails):
            self.memo[w] = find_stop(tail, self.stops) is not None


def decode_batch(tokenizer, seqs: list[list[int]]) -> list[str]:
    """`tokenizer.batch_decode(seqs, skip_special_tokens=True)`, straight from the `tokenizers`
    backend when that is all it would do: transformers first walks every id of every sequence
    to type-check it (`to_py_obj`), which cost a wide beam search ~0.3 s of ~8 s."""
    backend = getattr(tokenizer, "_tokenizer", None)
    plain = (TokenizersBackend is not None and type(tokenizer)._decode is TokenizersBackend._decode
             and type(tokenizer).batch_decode is TokenizersBackend.batch_decode
             and not getattr(tokenizer, "clean_up_tokenization_spaces", True))
    if backend is not None and plain and hasattr(backend, "decode_batch"):
        return backend.decode_batch(seqs, skip_special_tokens=True)
    return tokenizer.batch_decode(seqs, skip_special_tokens=True)


def _sample(logits: torch.Tensor, params: SamplingParams, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row and its logprob under the raw (temperature 1) distribution."""
    logits = logits.float()
    if params.temperature == 0:
        tok = logits.argmax(dim=-1)
    elif params.top_p < 1.0:
        tok = _sample_top_p(logits / params.temperature, params.top_p, rng)
    else:
        probs = torch.softmax(logits / params.temperature, dim=-1)
        tok = _inverse_cdf(probs, rng)
    lp = logits.gather(1, tok[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
    return tok, lp


def _inverse_cdf(weights: torch.Tensor, rng) -> torch.Tensor:
    """Draw one index per row proportionally to `weights` (>= 0, need not sum to 1).

    torch.multinomial costs ~1 ms per 49k-vocab row on CPU; a cumsum + searchsorted is ~20x
    cheaper. float64 keeps the cumulative sum exact enough over large vocabularies; u > 0 so
    zero-weight entries are never picked.
    """
    cum = weights.double().cumsum(dim=-1)
    u = torch.rand(weights.shape[0], 1, generator=rng, device=weights.device, dtype=torch.float64)
    u = u.clamp_(min=1e-12) * cum[:, -1:]
    idx = torch.searchsorted(cum, u).squeeze(1)
    return idx.clamp_(max=weights.shape[-1] - 1)


def _sample_top_p(scaled: torch.Tensor, top_p: float, rng) -> torch.Tensor:
    """Nucleus sampling (vLLM rule: keep a token iff the mass strictly above it is < top_p).

    A full sort of the vocabulary costs about as much as a forward pass of a small model on
    CPU, so look at the top-k first and widen k only while its mass is still below top_p.
    """
    vocab = scaled.shape[-1]
    norm = torch.logsumexp(scaled, dim=-1, keepdim=True)
    k = min(vocab, 256)
    while True:
        vals, idx = torch.topk(scaled, k, dim=-1)  # sorted, descending
        probs = (vals - norm).exp()
        cum = probs.cumsum(dim=-1)
        if k == vocab or bool((cum[:, -1] >= top_p).all()):
            break
        k = min(vocab, k * 4)
    probs = probs.masked_fill(cum - probs >= top_p, 0.0)
    return idx.gather(1, _inverse_cdf(probs, rng)[:, None]).squeeze(1)


def _ended_by_eos(s: _Seq) -> bool:
    return s.finish_reason == "stop" and s.stop_reason is None


def _new_cache(model, capacity: int | None):
    """A DynamicCache shaped for the model; plain full-attention layers get preallocated buffers.

    transformers 5 needs the config to build sliding/hybrid/linear layer types; those keep the
    stock (concatenating) layers, only exact `DynamicLayer`s are swapped.
    """
    try:
        cache = DynamicCache(config=model.config)
    except TypeError:  # transformers 4.x: no config argument
        return DynamicCache()
    layers = getattr(cache, "layers", None)
    if capacity and DynamicLayer is not None and layers and all(type(x) is DynamicLayer for x in layers):
        cache.layers = [_PreallocatedLayer(capacity) for _ in layers]
    return cache


if DynamicLayer is not None:

    class _PreallocatedLayer(DynamicLayer):
        """A DynamicLayer writing into buffers sized for prompt + max_new_tokens.

        The stock layer `torch.cat`s the whole cache every step (a full copy of K/V per token);
        here a step writes one slot and hands attention a view of the filled part.
        """

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity
            self.length = 0

        def lazy_initialization(self, key_states, value_states) -> None:
            self.dtype, self.device = key_states.dtype, key_states.device
            b, h, _, _ = key_states.shape
            self._k = key_states.new_empty(b, h, self.capacity, key_states.shape[-1])
            self._v = value_states.new_empty(b, h, self.capacity, value_states.shape[-1])
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if end > self._k.shape[-2]:
                self._resize(max(end, 2 * self._k.shape[-2]))
            self._k[:, :, self.length : end] = key_states
            self._v[:, :, self.length : end] = value_states
            self.length = end
            self._refresh()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices) -> None:
            if self.is_initialized:
                self._k, self._v = self._select(self._k, indices), self._select(self._v, indices)
                self._refresh()

        def _select(self, buf: torch.Tensor, indices) -> torch.Tensor:
            """Rows `indices` of a buffer, copying only the filled slots (search's step calls
            size the buffers for the whole token budget but fill a fraction of them)."""
            if not (isinstance(indices, torch.Tensor) and indices.dim() == 1 and indices.dtype == torch.long):
                return buf[indices]
            out = buf.new_empty(indices.shape[0], *buf.shape[1:])
            torch.index_select(buf[:, :, : self.length], 0, indices, out=out[:, :, : self.length])
            return out

        def reorder_cache(self, beam_idx) -> None:
            self.batch_select_indices(beam_idx.to(self.device) if self.is_initialized else beam_idx)

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.is_initialized:
                self._k = self._k.repeat_interleave(repeats, dim=0)
                self._v = self._v.repeat_interleave(repeats, dim=0)
                self._refresh()

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove < 0 and self.is_initialized:
                self.length = max(0, self.length + tokens_to_remove)
                self._refresh()

        def reset(self) -> None:
            self.length = 0
            super().reset()

        def _resize(self, capacity: int) -> None:
            """Only if a caller overruns the planned size: grow like a vector, copying once."""
            k = self._k.new_empty(*self._k.shape[:2], capacity, self._k.shape[-1])
            v = self._v.new_empty(*self._v.shape[:2], capacity, self._v.shape[-1])
            k[:, :, : self.length], v[:, :, : self.length] = self._k[:, :, : self.length], self._v[:, :, : self.length]
            self._k, self._v, self.capacity = k, v, capacity

        def _refresh(self) -> None:
            self.keys = self._k[:, :, : self.length]
            self.values = self._v[:, :, : self.length]


def _plain_layers(cache) -> bool:
    """Whether every layer of the cache is a plain full-attention one (what lean_decode writes to)."""
    layers = getattr(cache, "layers", None)
    return DynamicLayer is not None and bool(layers) and all(type(x) in (DynamicLayer, _PreallocatedLayer) for x in layers)


def _tokens_in(megabytes: float, model) -> int:
    """How many tokens of K/V (all layers, keys and values) fit in `megabytes` for this model;
    16384 when its config does not say how large a token's K/V is."""
    from reasoner.models import attention_head_size

    try:
        conf = model.config.to_dict()
        head_dim = attention_head_size(conf)
        conf = conf.get("text_config") or conf
        kv_heads = conf.get("num_key_value_heads") or conf["num_attention_heads"]
        per_token = 2 * conf["num_hidden_layers"] * kv_heads * head_dim * next(model.parameters()).element_size()
    except (AttributeError, KeyError, TypeError, StopIteration):
        return 16384
    return max(1, int(megabytes * 2**20 // per_token))


def _accepts_logits_to_keep(model) -> bool:
    """Prefill only needs the last position's logits; skip the [B, T, V] projection when we can."""
    return "logits_to_keep" in forward_parameters(model)


def _eos_ids(model, tokenizer) -> list[int]:
    """Union of the tokenizer's EOS and the generation config's (which may be a list)."""
    ids: list[int] = []
    gen_cfg = getattr(model, "generation_config", None)
    for value in (getattr(tokenizer, "eos_token_id", None), getattr(gen_cfg, "eos_token_id", None)):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    return ids


def _pad_id(tokenizer, eos_ids: list[int]) -> int:
    """Padding is masked out, so any valid id works; prefer the tokenizer's own."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None:
        return int(pad)
    return eos_ids[0] if eos_ids else 0


def _dedupe(prompts: list[str]) -> tuple[list[str], list[list[int]]]:
    """Distinct prompt texts and, for each, the original indices that share it (prefill once)."""
    index: dict[str, int] = {}
    owners: list[list[int]] = []
    for i, p in enumerate(prompts):
        if p not in index:
            index[p] = len(owners)
            owners.append([])
        owners[index[p]].append(i)
    return list(index), owners


def _scatter(prompts, owners, per_unique, n: int) -> list[list[Completion]]:
    """Hand each original prompt its own n completions of its distinct text."""
    result: list[list[Completion]] = [[] for _ in prompts]
    for u, idxs in enumerate(owners):
        for k, i in enumerate(idxs):
            result[i] = per_unique[u][k * n : (k + 1) * n]
    return result
