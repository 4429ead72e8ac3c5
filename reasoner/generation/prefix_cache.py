"""Keys and values of earlier sequences, reused when a later prompt starts with the same tokens.

Search calls `generate` again and again with prompts that extend earlier ones (prompt + the
steps so far). Attention K/V at position t depends only on tokens <= t, so the K/V of any common
token prefix can be copied instead of recomputed, and only the new tail is prefilled.
Entries are whole token sequences (prompt + generated ids) with their per-layer K/V; the store
is an LRU bounded by the number of tokens it holds.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [kv_heads, tokens, head_dim]


BUCKET = 16  # entries are indexed by their first BUCKET tokens


class PrefixStore:
    """LRU of token sequences -> K/V, at most `max_tokens` tokens in total.

    Search looks up and adds hundreds of sequences per call; comparing each with every entry
    cost more than the prefill it saved. Entries of at least BUCKET tokens are also indexed by
    their first BUCKET tokens: an entry sharing that many tokens with a query is in the query's
    bucket, so the longest match is found there (in the same LRU order) and only queries
    without one scan everything.
    """

    def __init__(self, max_tokens: int):
        if max_tokens < 1:
            raise ValueError(f"prefix cache size must be >= 1 token, got {max_tokens}")
        self.max_tokens = max_tokens
        self.tokens = 0
        self._entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self._buckets: dict[tuple[int, ...], OrderedDict[tuple[int, ...], None]] = {}
        self.fingerprint = None  # of the weights the entries were computed with

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._buckets.clear()
        self.tokens = 0

    def lookup(self, ids: list[int], limit: int) -> tuple[KV, int] | None:
        """The entry sharing the longest prefix with `ids` (capped at `limit` tokens) and that
        length, or None when no entry shares a first token. Ties go to the least recently used."""
        key = tuple(ids)
        if limit > 0 and key[:limit] in self._entries:  # search's usual case: an entry + one new token
            return self._hit(key[:limit], limit)
        best, best_len = None, 0
        for entry in self._bucket(key) or self._entries:
            n = common_prefix_len(entry, key)
            if n > best_len:
                best, best_len = entry, n
        if best is None:
            return None
        return self._hit(best, min(best_len, limit))

    def _hit(self, entry: tuple, length: int) -> tuple[KV, int]:
        self._touch(entry)
        return self._entries[entry], length

    def add(self, ids: list[int], kv: KV) -> None:
        """Remember one sequence; one that an entry already covers only refreshes that entry,
        and entries it extends are dropped (so no entry is a prefix of another)."""
        key = tuple(ids)
        if not key or len(key) > self.max_tokens:
            return
        for entry in list(self._related(key)):
            if len(entry) >= len(key) and entry[: len(key)] == key:
                self._touch(entry)
                return
            if len(entry) < len(key) and key[: len(entry)] == entry:
                self._drop(entry)
        self._entries[key] = kv
        if len(key) >= BUCKET:
            self._buckets.setdefault(key[:BUCKET], OrderedDict())[key] = None
        self.tokens += len(key)
        while self.tokens > self.max_tokens:
            self._drop(next(iter(self._entries)))

    def _bucket(self, key: tuple) -> OrderedDict | None:
        return self._buckets.get(key[:BUCKET]) if len(key) >= BUCKET else None

    def _related(self, key: tuple):
        """Every entry that may cover `key` or be a prefix of it."""
        if len(key) < BUCKET:
            return self._entries
        short = [key[:n] for n in range(1, BUCKET) if key[:n] in self._entries]
        return short + list(self._bucket(key) or ())

    def _touch(self, key) -> None:
        self._entries.move_to_end(key)
        if len(key) >= BUCKET:
            self._buckets[key[:BUCKET]].move_to_end(key)

    def _drop(self, key) -> None:
        del self._entries[key]
        self.tokens -= len(key)
        if len(key) >= BUCKET:
            bucket = self._buckets[key[:BUCKET]]
            del bucket[key]
            if not bucket:
                del self._buckets[key[:BUCKET]]


def common_prefix_len(a: tuple, b: tuple) -> int:
    """Length of the longest common prefix, by binary search over C-speed slice compares."""
    lo, hi = 0, min(len(a), len(b))
    if hi and a[:hi] == b[:hi]:
        return hi
    while lo < hi:  # invariant: a[:lo] == b[:lo], a[:hi] != b[:hi] (or hi is the bound)
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def weights_fingerprint(model):
    """Changes whenever a parameter is updated in place (optimizer steps, load_state_dict bump
    tensor version counters) or replaced; None when it cannot be tracked (inference tensors)."""
    try:
        return tuple((p.data_ptr(), p._version) for p in model.parameters())
    except RuntimeError:
        return None


def forget_if_weights_changed(store, model) -> None:
    """Clear a K/V store (`.clear()`, `.fingerprint`) filled with other weights than the model's
    now, or when that cannot be told: K/V computed by older weights would be silently wrong."""
    now = weights_fingerprint(model)
    if now is None or now != store.fingerprint:
        store.clear()
    store.fingerprint = now
