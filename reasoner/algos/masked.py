"""Masked reductions shared by every loss: padding and prompt tokens never count."""

from __future__ import annotations

import torch


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """Mean over mask==1 entries; an all-zero mask gives 0 rather than NaN."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8, mean=None) -> torch.Tensor:
    """(x - mean) / std over the masked entries (population std); masked-out entries become 0.
    `mean(x, mask)`: how entries are averaged (default masked_mean; over every rank's batch:
    `dist.masked_global_mean`)."""
    mean_of = mean or masked_mean
    mask = mask.to(x.dtype)
    mean = mean_of(x, mask)
    var = mean_of((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def reverse_cumsum(x: torch.Tensor, mask: torch.Tensor | None = None, gamma: float = 1.0) -> torch.Tensor:
    """G_t = sum_{s>=t} gamma^(s-t) x_s along the last dim (masked entries contribute 0)."""
    if mask is not None:
        x = x * mask.to(x.dtype)
    if gamma == 1.0:
        return x.flip(-1).cumsum(-1).flip(-1)
    out = torch.zeros_like(x)
    running = torch.zeros_like(x[..., 0])
    for t in range(x.size(-1) - 1, -1, -1):
        running = x[..., t] + gamma * running
        out[..., t] = running
    return out
