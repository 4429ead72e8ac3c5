"""OREO losses (ALGORITHMS.md §6): soft-Bellman value and policy objectives with stop-gradients.

States are response positions (token level), the positions before each step (step level) or
the first one (response level); `rho` holds log pi_theta - log pi_ref summed per state's action.
Tensors are [B, S] with a state mask; rewards are [B] in {0, 1}; no discount.
"""

from __future__ import annotations

import torch

from reasoner.algos.masked import masked_mean, reverse_cumsum


def oreo_value_loss(values: torch.Tensor, rho: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, beta: float,
                    mean=masked_mean) -> tuple[torch.Tensor, dict[str, float]]:
    """L_V = mean_S (V(s_t) + beta * sg[sum_{i>=t} rho_i] - R)^2 (`mean`: how the states are
    averaged, e.g. over every rank's batch: `dist.masked_batch_mean`)."""
    to_go = reverse_cumsum(rho.detach(), mask)
    err = values + beta * to_go - rewards.unsqueeze(1).to(values.dtype)
    loss = mean(err ** 2, mask)
    return loss, {"value_loss": float(loss.detach())}


def oreo_policy_loss(values: torch.Tensor, rho: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor, beta: float,
                     mean=masked_mean) -> tuple[torch.Tensor, dict[str, float]]:
    """L_pi = mean_S (sg[V(s_t)] + beta * (rho_t + sg[sum_{i>t} rho_i]) - R)^2 (KL term added by the caller)."""
    to_go = reverse_cumsum(rho.detach(), mask)
    future = to_go - rho.detach() * mask.to(rho.dtype)
    err = values.detach() + beta * (rho + future) - rewards.unsqueeze(1).to(rho.dtype)
    loss = mean(err ** 2, mask)
    return loss, {"policy_loss": float(loss.detach())}


def step_sums(token_values: torch.Tensor, step_ids: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Sum token-level values into steps: step_ids [B, T] holds each token's step index or -1.

    Returns [B, num_steps]; OREO's step-level rho is the sum of token rho over the step.
    """
    B = token_values.size(0)
    out = torch.zeros(B, num_steps + 1, dtype=token_values.dtype, device=token_values.device)
    idx = torch.where(step_ids >= 0, step_ids, torch.full_like(step_ids, num_steps))
    out = out.scatter_add(1, idx, token_values)
    return out[:, :num_steps]
