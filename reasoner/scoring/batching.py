"""Batching shared by the scorers: length-sorted right-padded batches, flat (row, col) indices."""

from __future__ import annotations

import math
from typing import Callable

import torch


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def context_limit(model) -> int:
    cfg = getattr(model, "config", None)
    return int(getattr(cfg, "max_position_embeddings", 0) or 0)


def batched(seqs: list[list[int]], batch_size: int, pad_id: int, device,
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


def flat_index(groups: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [r for r, g in enumerate(groups) for _ in g]
    cols = [c for g in groups for c in g]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


def split_flat(values: list[float], groups: list[list]) -> list[list[float]]:
    out, k = [], 0
    for g in groups:
        out.append(values[k:k + len(g)])
        k += len(g)
    return out


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def check_shapes(prompts, steps) -> None:
    if len(prompts) != len(steps):
        raise ValueError(f"score(): {len(prompts)} prompts but {len(steps)} step lists")
