"""The discriminative scorer's K/V store: solutions as trees of scored steps, so a candidate
that extends an already scored solution (every round of beam search, MCTS, DVTS) runs only its
new step through the PRM on top of its parent's stored keys and values.

`DiscriminativeScorer` (reasoner.scoring) owns one `PathCache`; these are its pieces.
"""

from __future__ import annotations

import torch

from reasoner.errors import UserError


class PathNode:
    """One scored piece of a solution: its own tokens' K/V (per layer [kv_heads, tokens, dim]),
    its parent (the solution without it), tokens from the start, and the step scores so far."""

    __slots__ = ("parent", "kv", "length", "scores", "nbytes")

    def __init__(self, parent, kv, length: int, scores: list[float]):
        self.parent, self.kv, self.length, self.scores = parent, kv, length, scores
        self.nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)

    def chain(self) -> list["PathNode"]:
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]


class PathCache:
    """(prompt, steps) -> `PathNode`, an LRU bounded by the K/V bytes of its nodes (a dropped
    node stays alive while a kept child points at it). Cleared when the weights change."""

    def __init__(self, max_bytes: int):
        from collections import OrderedDict

        self.max_bytes, self.bytes = max_bytes, 0
        self._nodes: OrderedDict = OrderedDict()
        self.fingerprint = None

    def check(self, model) -> None:
        from reasoner.generation.prefix_cache import forget_if_weights_changed

        forget_if_weights_changed(self, model)

    def clear(self) -> None:
        self._nodes.clear()
        self.bytes = 0

    def get(self, key):
        node = self._nodes.get(key)
        if node is not None:
            self._nodes.move_to_end(key)
        return node

    def put(self, key, node: PathNode) -> None:
        old = self._nodes.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
        self._nodes[key] = node
        self.bytes += node.nbytes
        while self.bytes > self.max_bytes and len(self._nodes) > 1:
            self.bytes -= self._nodes.popitem(last=False)[1].nbytes


def tag_cells(items: list) -> tuple[list[int], list[int]]:
    """(row, column) in the batch of each tagged piece's last token (its tag)."""
    rows, cols = [], []
    for r, (_, pieces) in enumerate(items):
        k = 0
        for _, piece, tagged in pieces:
            k += len(piece)
            if tagged:
                rows.append(r)
                cols.append(k - 1)
    return rows, cols


def takes_plain_cache(model) -> bool:
    """Whether the PRM's decoder takes position ids and a cache of plain full-attention layers:
    the only kind `forward_cached` can seed with stored K/V (sliding/hybrid layers cannot)."""
    from transformers import DynamicCache

    from reasoner.generation.kv_args import cache_argument, forward_parameters
    from reasoner.prm.model import causal_lm, decoder_and_head

    try:
        from transformers.cache_utils import DynamicLayer

        decoder, _ = decoder_and_head(model)
        cache = DynamicCache(config=causal_lm(model).config)
    except (ImportError, TypeError, ValueError, UserError):
        return False
    layers = getattr(cache, "layers", None)
    return (cache_argument(decoder) is not None and "position_ids" in forward_parameters(decoder) and bool(layers)
            and all(type(x) is DynamicLayer for x in layers))


def gather_past(parents: list[PathNode], width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) [rows, kv_heads, width, dim]: each row's path K/V right-aligned
    (left-padded); built once per distinct parent, then fanned out to its rows."""
    distinct = list({id(p): p for p in parents}.values())
    slot = {id(p): i for i, p in enumerate(distinct)}
    chains = [p.chain() for p in distinct]
    rows = torch.tensor([slot[id(p)] for p in parents])
    past = []
    for layer in range(len(distinct[0].kv)):
        k0, v0 = distinct[0].kv[layer]
        keys = k0.new_zeros(len(distinct), k0.shape[0], width, k0.shape[-1])
        values = v0.new_zeros(len(distinct), v0.shape[0], width, v0.shape[-1])
        for i, (parent, chain) in enumerate(zip(distinct, chains)):
            off = width - parent.length
            for node in chain:
                k, v = node.kv[layer]
                keys[i, :, off:off + k.shape[1]] = k
                values[i, :, off:off + k.shape[1]] = v
                off += k.shape[1]
        if len(distinct) != len(parents):
            keys, values = keys[rows.to(keys.device)], values[rows.to(keys.device)]
        past.append((keys, values))
    return past


def forward_cached(model, ids, mask, pos, past):
    """The decoder over `ids` after `past` K/V: (final hidden states [rows, T, H], cache layers)."""
    from transformers import DynamicCache

    from reasoner.generation.kv_args import cache_kwargs, returned_cache
    from reasoner.prm.model import causal_lm, decoder_and_head

    decoder, _ = decoder_and_head(model)
    cache = DynamicCache(config=causal_lm(model).config)
    for layer, (keys, values) in enumerate(past or []):
        cache.update(keys, values, layer)
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=pos, **cache_kwargs(decoder, cache))
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    cache = returned_cache(out, cache)
    return hidden, cache.layers
