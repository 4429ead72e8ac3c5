"""The StepScorer protocol, aggregation of step scores, and the batching every scorer shares."""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from reasoner.errors import UserError

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


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def context_limit(model) -> int:
    cfg = getattr(model, "config", None)
    return int(getattr(cfg, "max_position_embeddings", 0) or 0)


def batched(seqs: list[list[int]], batch_size: int, pad: int, device,
             run: Callable[[torch.Tensor, torch.Tensor, list[int]], list[list[float]]]) -> list[list[float]]:
    """Call run(ids, mask, indices) on length-sorted, right-padded batches; results in input order."""
    from reasoner.utils.train import pad_batch

    out: list[list[float] | None] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for start in range(0, len(order), max(1, batch_size)):
        idx = order[start:start + max(1, batch_size)]
        ids, mask = pad_batch([seqs[i] for i in idx], pad)
        for i, res in zip(idx, run(ids.to(device), mask.to(device), idx)):
            out[i] = res
    return out  # type: ignore[return-value]


def flat_index(groups: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [r for r, g in enumerate(groups) for _ in g]
    cols = [c for g in groups for c in g]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


def split_groups(values: list[float], groups: list[list]) -> list[list[float]]:
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
