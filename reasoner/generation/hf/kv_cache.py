"""The KV cache of one chunk: built for the model (plain layers preallocated for prompt +
max_new_tokens), and the prefix store's K/V written into it and read back out of it."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from reasoner.generation.hf.chunks import Group
from reasoner.generation.prefix_cache import PrefixStore

try:  # transformers 5: caches are lists of per-layer objects
    from transformers.cache_utils import DynamicLayer
except ImportError:  # pragma: no cover - transformers 4.x: plain DynamicCache only
    DynamicLayer = None


def new_cache(model, capacity: int | None):
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
        cache.layers = [PreallocatedLayer(capacity) for _ in layers]
    return cache


if DynamicLayer is not None:

    class PreallocatedLayer(DynamicLayer):
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


else:  # pragma: no cover - transformers 4.x
    PreallocatedLayer = None


def plain_layers(cache) -> bool:
    """Whether every layer of the cache is a plain full-attention one (what lean_decode writes to)."""
    layers = getattr(cache, "layers", None)
    return DynamicLayer is not None and bool(layers) and all(type(x) in (DynamicLayer, PreallocatedLayer) for x in layers)


def tokens_in(megabytes: float, model) -> int:
    """How many tokens of K/V (all layers, keys and values) fit in `megabytes` for this model;
    16384 when its config does not say how large a token's K/V is."""
    from reasoner.models.sizes import attention_head_size

    try:
        conf = model.config.to_dict()
        head_dim = attention_head_size(conf)
        conf = conf.get("text_config") or conf
        kv_heads = conf.get("num_key_value_heads") or conf["num_attention_heads"]
        per_token = 2 * conf["num_hidden_layers"] * kv_heads * head_dim * next(model.parameters()).element_size()
    except (AttributeError, KeyError, TypeError, StopIteration):
        return 16384
    return max(1, int(megabytes * 2**20 // per_token))


def load_prefixes(cache, groups: list[Group], cached: int, device) -> torch.Tensor:
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


def remember(store: PrefixStore, cache, attn, base, rows, slot_list, seqs, tokens, prompt_of) -> None:
    """Put the K/V of finished batch rows `rows` into the prefix store: prompt + generated ids
    except the last (never fed)."""
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
        store.add(ids, kv)
