"""How one generate call is cut into batches: distinct prompts, chunks of at most batch_size
sequences, per-sequence state, and the completions handed back in prompt order."""

from __future__ import annotations

from dataclasses import dataclass, field

from reasoner.generation.base import Completion


@dataclass
class Group:
    """One distinct prompt inside a chunk and how many sequences it spawns there."""

    ids: list[int]
    count: int
    cached: int = 0  # leading tokens whose K/V come from the prefix store
    kv: list | None = None  # that store entry's per-layer K/V


@dataclass
class Seq:
    """Per-sequence state of one chunk; `hist` is only filled when stop strings are in play."""

    end: int | None = None  # index of the last generated token once finished
    finish_reason: str = "length"
    stop_reason: str | None = None
    text: str | None = None  # set when a stop string cut it
    hist: list[int] = field(default_factory=list)


def ended_by_eos(s: Seq) -> bool:
    return s.finish_reason == "stop" and s.stop_reason is None


def plan_chunks(encoded: list[list[int]], counts: list[int], batch_size: int,
                sort_by_length: bool = True) -> list[list[tuple[int, int]]]:
    """Chunks of at most batch_size sequences, as (unique prompt, sequences) pairs.

    Longest prompts first so padding stays small and out-of-memory shows up early. (The
    order does not depend on the prefix cache, so seeded samples do not either.)
    """
    order = list(range(len(encoded)))
    if sort_by_length:
        order.sort(key=lambda u: -len(encoded[u]))
    chunks, cur, room = [], [], batch_size
    for u in order:
        left = counts[u]
        while left:
            take = min(left, room)
            cur.append((u, take))
            left -= take
            room -= take
            if room == 0:
                chunks.append(cur)
                cur, room = [], batch_size
    if cur:
        chunks.append(cur)
    return chunks


def dedupe(prompts: list[str]) -> tuple[list[str], list[list[int]]]:
    """Distinct prompt texts and, for each, the original indices that share it (prefill once)."""
    index: dict[str, int] = {}
    owners: list[list[int]] = []
    for i, p in enumerate(prompts):
        if p not in index:
            index[p] = len(owners)
            owners.append([])
        owners[index[p]].append(i)
    return list(index), owners


def scatter(prompts, owners, per_unique, n: int) -> list[list[Completion]]:
    """Hand each original prompt its own n completions of its distinct text."""
    result: list[list[Completion]] = [[] for _ in prompts]
    for u, idxs in enumerate(owners):
        for k, i in enumerate(idxs):
            result[i] = per_unique[u][k * n : (k + 1) * n]
    return result


def eos_ids(model, tokenizer) -> list[int]:
    """Union of the tokenizer's EOS and the generation config's (which may be a list)."""
    ids: list[int] = []
    gen_cfg = getattr(model, "generation_config", None)
    for value in (getattr(tokenizer, "eos_token_id", None), getattr(gen_cfg, "eos_token_id", None)):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    return ids


def pad_id(tokenizer, eos: list[int]) -> int:
    """Padding is masked out, so any valid id works; prefer the tokenizer's own."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None:
        return int(pad)
    return eos[0] if eos else 0
