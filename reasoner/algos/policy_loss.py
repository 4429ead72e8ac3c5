"""Clipped policy-gradient losses and their aggregation (ALGORITHMS.md §5).

Each function returns (loss, metrics); tensors are [B, T] over response tokens with mask M.
"""

from __future__ import annotations

import torch

from reasoner.algos.kl import k3
from reasoner.algos.masked import masked_mean

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "constant")


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str, max_len: int | None = None) -> torch.Tensor:
    """token-mean: sum(l M) / sum(M) over the batch (DAPO); seq-mean-token-mean: mean of per-sequence
    token means (original GRPO); constant: sum(l M) / (B * T_max) (Dr. GRPO)."""
    mask = mask.to(per_token.dtype)
    if how == "token-mean":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    if how == "seq-mean-token-mean":
        return masked_mean(per_token, mask, dim=1).mean()
    if how == "constant":
        return (per_token * mask).sum() / (per_token.size(0) * (max_len or per_token.size(1)))
    raise ValueError(f"loss aggregation must be one of {AGGREGATIONS}, got {how!r}")


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip: float | None = None,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    aggregation: str = "token-mean",
    max_len: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """l_t = -min(r_t A, clip(r_t, 1-eps_low, 1+eps_high) A) [+ dual clip for A<0] + beta * k3 KL.

    advantages may be [B] (broadcast to every token) or [B, T].
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantages
    per_token = -torch.min(unclipped, clipped)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError("dual_clip must be > 1")
        dual = torch.min(per_token, -dual_clip * advantages)
        per_token = torch.where(advantages < 0, dual, per_token)
    kl = None
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs ref_logp")
        kl = k3(logp, ref_logp)
        per_token = per_token + beta * kl
    loss = aggregate(per_token, mask, aggregation, max_len)
    m = mask.to(logp.dtype)
    with torch.no_grad():
        is_low = (ratio < 1.0 - eps_low) & (advantages < 0)
        is_high = (ratio > 1.0 + eps_high) & (advantages > 0)
        metrics = {
            "clip_fraction": float(masked_mean((is_low | is_high).to(m.dtype), m)),
            "ratio_mean": float(masked_mean(ratio, m)),
        }
        if kl is not None:
            metrics["kl"] = float(masked_mean(kl, m))
    return loss, metrics


def sequence_clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    dual_clip: float | None = None,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
    aggregation: str = "token-mean",
    max_len: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """RLOO's sequence-level form: r = exp(sum_t M (logp - old)), loss = mean_i -min(r A, clip(r) A).

    Takes clipped_surrogate's arguments so POLICY_LOSSES entries are interchangeable; the loss is
    always the mean over sequences (`aggregation`, `max_len` do not apply), and a dual clip or a
    k3 KL term are token-level notions (a KL enters the sequence level as a reward penalty).
    """
    if dual_clip is not None or beta != 0.0:
        raise ValueError("the sequence-level surrogate takes no dual clip and no k3 KL (use a KL reward penalty)")
    m = mask.to(logp.dtype)
    ratio = torch.exp(((logp - old_logp) * m).sum(-1))
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = (-torch.min(ratio * advantages, clipped * advantages)).mean()
    with torch.no_grad():
        clip = ((ratio < 1 - eps_low) & (advantages < 0)) | ((ratio > 1 + eps_high) & (advantages > 0))
    return loss, {"clip_fraction": float(clip.float().mean()), "ratio_mean": float(ratio.detach().mean())}


def kl_penalized_rewards(rewards: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """KL as a reward penalty (RLOO style): R_i - beta * sum_t M (logp - ref) with the sampling policy's logp."""
    return rewards - beta * ((logp - ref_logp) * mask.to(logp.dtype)).sum(-1)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float | None = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO critic loss 0.5 * max((V - G)^2, (V_clipped - G)^2), V_clipped = V_old + clip(V - V_old, ±clip)."""
    err = (values - returns) ** 2
    if clip is not None:
        v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        err = torch.max(err, (v_clipped - returns) ** 2)
    loss = 0.5 * masked_mean(err, mask)
    return loss, {"value_loss": float(loss.detach())}


# The clipped surrogate of each importance level (UpdatePlan.importance_level), same signature.
POLICY_LOSSES = {"token": clipped_surrogate, "sequence": sequence_clipped_surrogate}
