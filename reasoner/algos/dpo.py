"""DPO loss (the OREO paper's baseline): pairs of a correct and an incorrect answer per problem."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dpo_loss(chosen_logp: torch.Tensor, rejected_logp: torch.Tensor, ref_chosen_logp: torch.Tensor, ref_rejected_logp: torch.Tensor, beta: float = 0.1,
             mean=torch.mean) -> tuple[torch.Tensor, dict[str, float]]:
    """-log sigmoid(beta * ((logp_c - ref_c) - (logp_r - ref_r))), inputs are summed sequence log-probs [B]
    (`mean`: how the pairs are averaged, e.g. over every rank's batch)."""
    margin = (chosen_logp - ref_chosen_logp) - (rejected_logp - ref_rejected_logp)
    loss = mean(-F.logsigmoid(beta * margin))
    return loss, {"dpo_loss": float(loss.detach()), "reward_accuracy": float((margin > 0).float().mean())}
