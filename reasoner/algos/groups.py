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


def ragged_group_advantages(rewards: torch.Tensor, sizes: list[int], estimator: str = "grpo",
                            scale_rewards: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """GRPO (R - mean_g) / (std + eps) or RLOO R - mean_{j != i} per group of its own size.

    A group of one gets advantage 0 (nothing to compare with). GRPO's std is the unbiased one,
    of the group (scale_rewards=group), of the whole batch (batch), or not applied (none).
    """
    _check(rewards, sizes)
    r = rewards.float()
    out = torch.zeros_like(r)
    batch_std = r.std() if r.numel() > 1 else torch.zeros(())
    start = 0
    for s in sizes:
        g = r[start:start + s]
        if s > 1:
            if estimator == "rloo":
                out[start:start + s] = g - (g.sum() - g) / (s - 1)
            elif estimator == "grpo":
                centred = g - g.mean()
                if scale_rewards == "group":
                    centred = centred / (g.std() + eps)
                elif scale_rewards == "batch":
                    centred = centred / (batch_std + eps)
                elif scale_rewards != "none":
                    raise ValueError(f"scale_rewards must be group, batch or none, got {scale_rewards!r}")
                out[start:start + s] = centred
            else:
                raise ValueError(f"estimator must be grpo or rloo, got {estimator!r}")
        start += s
    return out


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
