"""Pieces every trainer shares: optimiser, LR schedule, the seeded epoch order, padding."""

from __future__ import annotations

import math
from typing import Iterable

import torch


def build_optimizer(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, betas) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, on torch's fused kernel where it runs (HF Trainer's
    default, so TRL's too): one kernel over all parameters instead of ~10 ops per tensor, the
    same update up to rounding; a small model's step is otherwise mostly per-tensor overhead."""
    params = [p for p in params if p.requires_grad]
    fused = _fused_adam_ok(params) or None
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas), fused=fused)


def _fused_adam_ok(params: list[torch.nn.Parameter]) -> bool:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # pragma: no cover - older torch: the default kernels
        return False
    devices = _get_fused_kernels_supported_devices()
    return bool(params) and all(p.device.type in devices and p.is_floating_point() for p in params)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, warmup_steps: int, total_steps: int):
    """Linear warm-up then cosine / linear decay to 10% (or constant)."""
    from reasoner.errors import UserError

    if schedule not in ("cosine", "linear", "constant"):
        raise UserError(f"config: optim.schedule must be cosine, linear or constant, got '{schedule}'")

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "linear":
            return 1.0 - 0.9 * progress
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of one epoch: a pure function of (seed, epoch), so resuming is exact."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def pad_batch(seqs: list[list[int]], pad_id: int, labels: list[list[int]] | None = None, left: bool = False):
    """Pad token id lists into (input_ids, attention_mask[, labels]) tensors."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long) if labels is not None else None
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, sl] = torch.tensor(s, dtype=torch.long)
        mask[i, sl] = 1
        if lab is not None:
            lab[i, sl] = torch.tensor(labels[i], dtype=torch.long)
    return (ids, mask, lab) if labels is not None else (ids, mask)
