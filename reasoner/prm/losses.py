"""PRM losses as pure tensor functions returning (loss, metrics) (ALGORITHMS.md §3).

No model and no config inside, so each is checked on hand-computed tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def step_probability(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """P(+) of a 2-way softmax over the '+'/'-' logits = sigmoid(l+ - l-).

    A 1-logit (scalar) head is the same thing with neg_logits = 0.
    """
    return torch.sigmoid(pos_logits.float() - neg_logits.float())


def discriminative_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, labels: torch.Tensor,
                        label_type: str = "hard", threshold: float = 0.5) -> tuple[torch.Tensor, dict]:
    """Mean loss over the labelled steps given (one entry per step tag).

    hard: cross-entropy over the two classes ('+' = class 0) with target label >= threshold.
    soft: binary cross-entropy of P(+) against the label itself (an MC value in [0, 1]).
    Metrics: loss, step accuracy (P(+) >= 0.5 vs label >= threshold), number of steps.
    """
    pos, neg, y = pos_logits.float(), neg_logits.float(), labels.float()
    if label_type == "hard":
        target = (y < threshold).long()  # 0 = '+', 1 = '-'
        loss = F.cross_entropy(torch.stack([pos, neg], dim=-1), target)
    elif label_type == "soft":
        loss = F.binary_cross_entropy_with_logits(pos - neg, y)
    else:
        raise ValueError(f"label_type must be 'hard' or 'soft', got {label_type!r}")
    with torch.no_grad():
        acc = ((pos >= neg) == (y >= threshold)).float().mean()
    return loss, {"loss": float(loss.detach()), "step_acc": float(acc), "steps": int(y.numel())}


def implicit_rewards(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Sequence reward beta * sum_t M_t (log pi - log pi_ref), one per row."""
    return beta * ((logp.float() - ref_logp.float()) * mask.float()).sum(dim=-1)


def implicit_loss(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, outcome: torch.Tensor,
                  beta: float) -> tuple[torch.Tensor, dict]:
    """PRIME's implicit-PRM loss: BCE(sigmoid(beta * sum_t M_t log-ratio_t), outcome), mean over rows.

    logp / ref_logp: [B, T] log-probs of the response tokens under the PRM and the reference;
    mask: [B, T] 1 on response tokens; outcome: [B] in [0, 1].
    """
    r = implicit_rewards(logp, ref_logp, mask, beta)
    y = outcome.float()
    loss = F.binary_cross_entropy_with_logits(r, y)
    with torch.no_grad():
        acc = ((r > 0) == (y >= 0.5)).float().mean()
    return loss, {"loss": float(loss.detach()), "outcome_acc": float(acc), "reward_mean": float(r.mean().detach())}
