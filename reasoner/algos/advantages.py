"""Advantage estimators (ALGORITHMS.md §5), each a pure function of reward tensors.

Rewards of one prompt's group are contiguous: a flat [B] tensor with B = num_groups * G.
"""

from __future__ import annotations

import torch

from reasoner.algos.masked import masked_mean, masked_whiten, reverse_cumsum


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be flat with a multiple of group_size={group_size} entries, got {tuple(rewards.shape)}")
    return rewards.view(-1, group_size)


def grpo_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """A_i = (R_i - mean_group R) / (std + eps); std of the group, of the batch, or none (Dr. GRPO).

    std is the unbiased sample std, as in TRL's GRPOTrainer.
    """
    g = _grouped(rewards.float(), group_size)
    centred = (g - g.mean(dim=1, keepdim=True)).reshape(-1)
    if scale_rewards == "group":
        std = g.std(dim=1, keepdim=True).expand_as(g).reshape(-1) if group_size > 1 else torch.zeros_like(centred)
    elif scale_rewards == "batch":
        std = rewards.float().std().expand_as(centred) if rewards.numel() > 1 else torch.zeros_like(centred)
    elif scale_rewards == "none":
        return centred
    else:
        raise ValueError(f"scale_rewards must be group, batch or none, got {scale_rewards!r}")
    return centred / (std + eps)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """A_i = R_i - mean_{j != i} R_j (leave-one-out baseline)."""
    if group_size < 2:
        raise ValueError("RLOO needs at least 2 samples per prompt")
    g = _grouped(rewards.float(), group_size)
    baseline = (g.sum(dim=1, keepdim=True) - g) / (group_size - 1)
    return (g - baseline).reshape(-1)


def normalize(advantages: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Batch normalisation of sequence advantages: (A - mean) / (unbiased std + eps)."""
    if advantages.numel() < 2:
        return advantages - advantages.mean()
    return (advantages - advantages.mean()) / (advantages.std() + eps)


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over token rewards [B, T]; returns (advantages, returns).

    V after the last response token is 0 (the episode ends); masked positions get 0.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    T = rewards.size(1)
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in range(T - 1, -1, -1):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask


def prime_advantages(outcome: torch.Tensor, process: torch.Tensor, mask: torch.Tensor, group_size: int, gamma: float = 1.0, whiten: bool = True) -> torch.Tensor:
    """PRIME: leave-one-out baselines for outcome (last token) and process (every token) rewards,
    discounted returns of each, summed, whitened over the batch.

    outcome: [B] verifier rewards; process: [B, T] implicit-PRM token rewards (beta * log-ratio).
    The process baseline of sample i is the mean over the other samples of their per-token
    average process reward (PRIME paper, eq. 5).
    """
    mask = mask.to(process.dtype)
    B, T = process.shape
    out_adv = rloo_advantages(outcome, group_size)
    lengths = mask.sum(1).clamp(min=1.0)
    last = (lengths - 1).long()
    outcome_tok = torch.zeros_like(process)
    outcome_tok[torch.arange(B), last] = out_adv.to(process.dtype)
    per_seq = _grouped(masked_mean(process, mask, dim=1), group_size)
    baseline = ((per_seq.sum(1, keepdim=True) - per_seq) / (group_size - 1)).reshape(-1, 1)
    process_tok = (process - baseline) * mask
    returns = reverse_cumsum(outcome_tok, mask, gamma) + reverse_cumsum(process_tok, mask, gamma)
    return masked_whiten(returns, mask) if whiten else returns * mask

