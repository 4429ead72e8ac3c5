"""`HFGenerator`: the decoding loop over a plain transformers model (see the package docstring)."""

from __future__ import annotations

import contextlib

import torch

from reasoner.prompts import encode_prompt
from reasoner.generation.base import Completion, SamplingParams, check_params, sequence_seed
from reasoner.generation import lean_decode
from reasoner.generation.cpu_linear import PackedLinears
from reasoner.generation.hf.chunks import Group, Seq, dedupe, ended_by_eos, eos_ids, pad_id, plan_chunks, scatter
from reasoner.generation.hf.kv_cache import load_prefixes, new_cache, plain_layers, remember, tokens_in
from reasoner.generation.hf.sampling import sample
from reasoner.generation.hf.stops import StopChecker, decode_batch
from reasoner.generation.kv_args import cache_kwargs, forward_parameters, returned_cache
from reasoner.generation.prefix_cache import PrefixStore, forget_if_weights_changed


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
        self.eos_ids = eos_ids(model, tokenizer)
        self.pad_id = pad_id(tokenizer, self.eos_ids)
        self._logits_to_keep = _accepts_logits_to_keep(model)
        if prefix_cache and prefix_cache_tokens is None:
            prefix_cache_tokens = tokens_in(prefix_cache_mb, model)
        self._prefix = PrefixStore(prefix_cache_tokens) if prefix_cache else None
        self._packed = PackedLinears(batch_size) if fast_linear else None
        self.lean_decode = lean_decode
        self._stop_memo: dict[tuple[str, ...], dict] = {}  # stops -> StopChecker verdicts per id window

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
        unique, owners = dedupe(prompts)
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
            # autocast off: a bf16 training step (train.precision) samples in the model's own dtype,
            # which at decode's small batches is also the faster one on CPU
            with torch.inference_mode(), packed, torch.autocast(self._device().type, enabled=False):
                lean = lean_decode.step_fn(self.model) if self.lean_decode else None  # once per call: it copies weights
                counts = [len(o) * params.n for o in owners]
                seeds = sequence_seeds(params, owners, len(prompts))
                for chunk in plan_chunks(encoded, counts, self.batch_size, self.sort_by_length):
                    draws = seeds and [next(seeds[u]) for u, c in chunk for _ in range(c)]
                    done = iter(self._run_chunk([Group(encoded[u], c) for u, c in chunk], params, rng, lean, draws))
                    for u, c in chunk:
                        per_unique[u].extend(next(done) for _ in range(c))
        finally:
            self.model.train(was_training)
        return scatter(prompts, owners, per_unique, params.n)

    # ---------------------------------------------------------------- decoding

    def _run_chunk(self, groups: list[Group], params: SamplingParams, rng, lean,
                   seeds: list[int] | None = None) -> list[Completion]:
        """Prefill the distinct prompts once, fan out to sequences, decode until all finish
        (decode steps through `lean`, lean_decode's step for this call, where the cache allows).
        With `seeds` (one per sequence) each sequence draws its own uniforms, not `rng`'s."""
        device = self._device()
        total = sum(g.count for g in groups)
        max_new = params.max_new_tokens
        seqs = [Seq() for _ in range(total)]
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
            stopper = StopChecker(self.tokenizer, params.stop, self._stop_memo.setdefault(tuple(params.stop), {}))
        live = total  # rows in the batch whose sequence is not finished
        lean = lean if plain_layers(cache) else None

        uniforms = per_sequence_uniforms(seeds, max_new, logits.device) if seeds and params.temperature > 0 else None
        for step in range(max_new):
            tok, lp = sample(logits, params, rng, None if uniforms is None else uniforms[slots.to(uniforms.device), step])
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
                    remember(self._prefix, cache, attn, base, gone, slot_list, seqs, tokens, prompt_of)
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
            remember(self._prefix, cache, attn, base, range(len(slot_list)), slot_list, seqs, tokens, prompt_of)
        return self._completions(seqs, tokens.cpu(), logps.cpu())

    def _decode(self, lean, tok, pos, attn, cache) -> torch.Tensor:
        """Logits [rows, V] of one new token per row, through the lean step when there is one."""
        if lean is not None:
            return lean(tok, pos, attn, cache)
        out = self.model(input_ids=tok[:, None], attention_mask=attn, position_ids=pos[:, None], **cache_kwargs(self.model, cache))
        return out.logits[:, -1, :]

    def _prefill(self, groups: list[Group], max_new: int, device, lean):
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
        cache = new_cache(self.model, cached + width + max_new if self.preallocate_cache else None)
        if cached:
            attn = torch.cat([load_prefixes(cache, groups, cached, device), attn], dim=1)
        if lean is not None and cached and width == 1 and plain_layers(cache):
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

    # ---------------------------------------------------------------- finishing

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

    def _completions(self, seqs: list[Seq], tokens, logps) -> list[Completion]:
        """Turn finished sequence states into Completions (one batched decode for the text)."""
        ids = [tokens[i, : s.end + 1].tolist() for i, s in enumerate(seqs)]
        need = [i for i, s in enumerate(seqs) if s.text is None]
        visible = [ids[i][:-1] if ended_by_eos(seqs[i]) else ids[i] for i in need]
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


def sequence_seeds(params: SamplingParams, owners: list[list[int]], num_prompts: int) -> list | None:
    """Per distinct prompt, an iterator over the seeds of its sequences in the order generate()
    hands them out (owner by owner, n each), from params.prompt_seeds; None without them."""
    if params.prompt_seeds is None:
        return None
    if len(params.prompt_seeds) != num_prompts:
        raise ValueError(f"prompt_seeds has {len(params.prompt_seeds)} seeds for {num_prompts} prompts")
    return [iter([sequence_seed(params.prompt_seeds[i], j) for i in idxs for j in range(params.n)]) for idxs in owners]


def per_sequence_uniforms(seeds: list[int], steps: int, device) -> torch.Tensor:
    """[sequences, steps] float64 uniforms, row r drawn from its own generator seeded seeds[r]."""
    rows = [torch.rand(steps, generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in seeds]
    return torch.stack(rows).to(device)


def _accepts_logits_to_keep(model) -> bool:
    """Prefill only needs the last position's logits; skip the [B, T, V] projection when we can."""
    return "logits_to_keep" in forward_parameters(model)
