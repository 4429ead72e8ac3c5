"""Rollout batches: (prompt, completion) token ids laid out so every completion starts at the
same column, and one forward pass gives the per-token log-probs of all completions.

Layout: prompts left-padded to width P, completions right-padded to width T after it, so the
response tokens of row i are input_ids[i, P:P+T] and their logits sit at columns P-1..P+T-2.
Positions count real tokens only (as the HF generator does), so padding never shifts RoPE.

Temperature: online RL samples from softmax(logits / T), so the policy, old and reference
log-probs (and the entropy metric) are taken at the sampling temperature T, as TRL does
(`temperature=` here; TRL 1.16: add_fused_lm_head(model, temperature) / selective_log_softmax).
The generator's own Completion.logprobs are raw (T = 1) and RL never uses them: the behaviour
log-probs are always recomputed here. Offline RL (OREO/DPO) and PRIME's implicit PRM score
fixed data, so they keep temperature 1.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch

from reasoner.algos.logprobs import entropy_from_logits, token_logprobs
from reasoner.generation.kv_args import cache_argument, cache_kwargs, returned_cache


@dataclass
class RolloutBatch:
    input_ids: torch.Tensor  # [B, P + T]
    attention_mask: torch.Tensor  # [B, P + T]
    position_ids: torch.Tensor  # [B, P + T]
    response_mask: torch.Tensor  # [B, T] float, 1 on completion tokens
    prompt_width: int  # P

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_width:]

    def rows(self, idx) -> "RolloutBatch":
        """A sub-batch (micro-batch) with the same layout."""
        return RolloutBatch(self.input_ids[idx], self.attention_mask[idx], self.position_ids[idx],
                            self.response_mask[idx], self.prompt_width)

    def to(self, device) -> "RolloutBatch":
        return RolloutBatch(self.input_ids.to(device), self.attention_mask.to(device), self.position_ids.to(device),
                            self.response_mask.to(device), self.prompt_width)


def build_batch(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int, max_length: int | None = None) -> RolloutBatch:
    """Lay out rows of (prompt ids, completion ids); completions are cut so prompt+completion <= max_length."""
    if len(prompt_ids) != len(completion_ids) or not prompt_ids:
        raise ValueError("build_batch needs the same non-zero number of prompts and completions")
    comps = []
    for p, c in zip(prompt_ids, completion_ids):
        if not p:
            raise ValueError("a prompt has no tokens")
        keep = len(c) if max_length is None else max(0, min(len(c), max_length - len(p)))
        comps.append(list(c[:keep]))
    P = max(len(p) for p in prompt_ids)
    T = max(1, max(len(c) for c in comps))
    B = len(prompt_ids)
    ids = torch.full((B, P + T), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + T), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompt_ids, comps)):
        ids[i, P - len(p):P] = torch.tensor(p, dtype=torch.long)
        attn[i, P - len(p):P] = 1
        if c:
            ids[i, P:P + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[i, P:P + len(c)] = 1
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    return RolloutBatch(ids, attn, pos, attn[:, P:].float(), P)


def _accepts(model, name: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return name in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def response_logits(model, batch: RolloutBatch, temperature: float = 1.0) -> torch.Tensor:
    """Logits predicting each response token, divided by the sampling temperature: [B, T, V]
    (only the last T+1 columns are projected; fp32 when T != 1)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probs, got {temperature}")
    shared = _shared_prompts(model, batch)
    if shared is not None:
        logits = _prefix_shared_logits(model, batch, *shared)
    else:
        logits = _full_logits(model, batch)
    return logits if temperature == 1.0 else logits.float() / temperature


def _full_logits(model, batch: RolloutBatch) -> torch.Tensor:
    """One pass over every row's [prompt | response]."""
    T = batch.response_mask.size(1)
    kwargs = {"logits_to_keep": T + 1} if _accepts(model, "logits_to_keep") else {}
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                use_cache=False, **kwargs)
    logits = out.logits
    return logits[:, -(T + 1):-1]


def _shared_prompts(model, batch: RolloutBatch):
    """(first row of each distinct prompt, row -> its distinct prompt), or None when running
    each distinct prompt once would not save at least one token per row (or cannot be done)."""
    B, P = batch.input_ids.shape[0], batch.prompt_width
    if B < 2 or P < 2 or not _can_share_prefix(model):
        return None
    key = torch.cat([batch.input_ids[:, :P], batch.attention_mask[:, :P]], dim=1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    distinct = int(inverse.max()) + 1
    if (B - distinct) * P < B:
        return None
    rows = torch.arange(B, device=inverse.device)
    first = torch.full((distinct,), B, dtype=torch.long, device=inverse.device).scatter_reduce_(0, inverse, rows, "amin")
    return first, inverse


def _can_share_prefix(model) -> bool:
    """The model must take a KV cache and keep it: HF drops the cache of activation-checkpointed
    layers whenever they are in training mode (no_grad passes included)."""
    if not (cache_argument(model) and _accepts(model, "logits_to_keep")):
        return False
    return not (model.training and any(getattr(m, "gradient_checkpointing", False) for m in model.modules()))


def _prefix_shared_logits(model, batch: RolloutBatch, first: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """`response_logits` with each distinct prompt run once (a GRPO group shares one): its keys
    and values are fanned out to the rows that share it and only the responses run per row.
    Same logits, and the gradients of the shared prompt sum back through the fan-out, so the
    result is that of the full pass with G-1 of every G prompt forwards/backwards saved."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    P, T = batch.prompt_width, batch.response_mask.size(1)
    cache = DynamicCache(config=model.config)
    if any(type(layer) is not DynamicLayer for layer in getattr(cache, "layers", [None])):
        return _full_logits(model, batch)  # sliding / hybrid layers: keep the plain pass
    out = model(input_ids=batch.input_ids[first, :P], attention_mask=batch.attention_mask[first, :P],
                position_ids=batch.position_ids[first, :P], **cache_kwargs(model, cache), logits_to_keep=1)
    cache = returned_cache(out, cache)
    cache.batch_select_indices(inverse)
    head = out.logits[:, -1:][inverse]  # the last prompt column predicts the first response token
    if T == 1:
        return head
    out = model(input_ids=batch.input_ids[:, P:P + T - 1], attention_mask=batch.attention_mask[:, :P + T - 1],
                position_ids=batch.position_ids[:, P:P + T - 1], **cache_kwargs(model, cache))
    return torch.cat([head, out.logits], dim=1)


def response_logprobs(model, batch: RolloutBatch, with_entropy: bool = False, keep_logits: bool = False,
                   temperature: float = 1.0):
    """(logp [B, T], entropy [B, T] or None, logits / temperature or None) of the response tokens
    in one forward, all under the distribution sampled at `temperature`."""
    logits = response_logits(model, batch, temperature)
    logp = token_logprobs(logits, batch.response_ids)
    ent = None
    if with_entropy:
        with torch.no_grad():
            ent = entropy_from_logits(logits)
    return logp, ent, (logits if keep_logits else None)


def reference_outputs(reference, batch: RolloutBatch, keep_logits: bool = False, temperature: float = 1.0):
    """(logp, logits or None) under a models.ReferenceModel (own copy or the policy with its
    adapter off), at the sampling temperature like the policy's."""
    model = reference.model
    ctx = model.disable_adapter() if reference.adapter_disabled else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), ctx:
            logp, _, logits = response_logprobs(model, batch, keep_logits=keep_logits, temperature=temperature)
    finally:
        model.train(was_training)
    return logp, logits


def response_values(value_model, batch: RolloutBatch) -> torch.Tensor:
    """Critic values V(s_t) [B, T] of the states before each response token (models.ValueModel)."""
    T = batch.response_mask.size(1)
    out = value_model.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, use_cache=False)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    hidden = hidden[:, -(T + 1):-1]
    return value_model.head(hidden.to(value_model.head.weight.dtype)).squeeze(-1).float()
