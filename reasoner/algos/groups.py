"""Group baselines for groups of unequal size (RLEP's n fresh + up to M replayed answers) and
DeepSeekMath-style process-supervision advantages from dense step rewards.

Rows of one group are contiguous; `sizes` lists the group sizes in order (sum = B).
"""

from __future__ import annotations

import torch

from reasoner.algos.masked import reverse_cumsum


def _check(rewards: torch.Tensor, sizes: list[int]) -> None:
    if rewards.size(0) != sum(sizes) or any(s < 1 for s in sizes):
        raise ValueError(f"group sizes {sizes} do not cover {rewards.size(0)} rows")


def grpo_group_advantages(rewards: torch.Tensor, sizes: list[int], scale_rewards: str = "group",
                          eps: float = 1e-4) -> torch.Tensor:
    """GRPO per group of its own size: (R - mean_g) / (std + eps), with the unbiased std of the
    group (scale_rewards=group), of the whole batch (batch), or none (none: Dr. GRPO).
    A group of one gets advantage 0 (nothing to compare with)."""
    _check(rewards, sizes)
    r = rewards.float()
    out = torch.zeros_like(r)
    batch_std = r.std() if r.numel() > 1 else torch.zeros(())
    start = 0
    for s in sizes:
        g = r[start:start + s]
        if s > 1:
            centred = g - g.mean()
            if scale_rewards == "group":
                centred = centred / (g.std() + eps)
            elif scale_rewards == "batch":
                centred = centred / (batch_std + eps)
            elif scale_rewards != "none":
                raise ValueError(f"scale_rewards must be group, batch or none, got {scale_rewards!r}")
            out[start:start + s] = centred
        start += s
    return out


def rloo_group_advantages(rewards: torch.Tensor, sizes: list[int], scale_rewards: str | None = None,
                          eps: float = 1e-4) -> torch.Tensor:
    """RLOO per group of its own size: R_i - mean_{j != i} R_j (no scaling; a group of one gets 0)."""
    _check(rewards, sizes)
    r = rewards.float()
    out = torch.zeros_like(r)
    start = 0
    for s in sizes:
        g = r[start:start + s]
        if s > 1:
            out[start:start + s] = g - (g.sum() - g) / (s - 1)
        start += s
    return out


# The group-relative estimators by name, as the group algorithms (algos/online) pick them.
ADVANTAGES = {"grpo": grpo_group_advantages, "rloo": rloo_group_advantages}


def ragged_group_advantages(rewards: torch.Tensor, sizes: list[int], estimator: str = "grpo",
                            scale_rewards: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """ADVANTAGES[estimator] over groups of unequal size (rows of a group contiguous)."""
    if estimator not in ADVANTAGES:
        raise ValueError(f"estimator must be one of {', '.join(ADVANTAGES)}, got {estimator!r}")
    return ADVANTAGES[estimator](rewards, sizes, scale_rewards, eps)


def process_advantages(step_rewards: torch.Tensor, step_mask: torch.Tensor, sizes: list[int], eps: float = 1e-4) -> torch.Tensor:
    """Process supervision (DeepSeekMath §4.1.3): step rewards [B, T] sit at each step's last token
    (step_mask = 1 there); they are normalised by the mean/std of all step rewards of the group,
    and a token's advantage is the sum of the normalised rewards of the steps ending at or after it."""
    _check(step_rewards, sizes)
    m = step_mask.to(step_rewards.dtype)
    norm = torch.zeros_like(step_rewards)
    start = 0
    for s in sizes:
        rows = slice(start, start + s)
        vals = step_rewards[rows][m[rows] > 0]
        if vals.numel() > 0:
            std = vals.std() if vals.numel() > 1 else torch.zeros((), dtype=vals.dtype)
            norm[rows] = (step_rewards[rows] - vals.mean()) / (std + eps) * m[rows]
        start += s
    return reverse_cumsum(norm)
