"""KL estimators between the policy and the frozen reference."""

from __future__ import annotations

import torch


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator per token: exp(ref - logp) - (ref - logp) - 1 (>= 0, unbiased)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def full_vocab_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(pi || pi_ref) per position over the whole vocabulary: sum_v p (log p - log p_ref)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    ref = torch.log_softmax(ref_logits.float(), dim=-1)
    return (logp.exp() * (logp - ref)).sum(-1)
