"""GRPO and its variants (DAPO and Dr. GRPO are conf/algo/dapo.yaml and dr_grpo.yaml):
A_i = (R_i - mean_g R) / (std + eps) over each prompt's group, clipped surrogate (ALGORITHMS.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from reasoner.algos.online.base import GroupAlgorithm, GroupConfig
from reasoner.errors import UserError

SCALES = ("group", "batch", "none")


@dataclass
class GRPOConfig(GroupConfig):
    name: str = "grpo"
    loss_aggregation: str = "seq-mean-token-mean"
    scale_rewards: str = "group"  # the std advantages are divided by: the group's, the batch's, or none (Dr. GRPO)


class GRPO(GroupAlgorithm):
    name = "grpo"
    Config = GRPOConfig
    estimator = "grpo"

    @classmethod
    def validate(cls, run_cfg) -> None:
        super().validate(run_cfg)
        if run_cfg.algo.scale_rewards not in SCALES:
            raise UserError(f"config: algo.scale_rewards must be group, batch or none, got '{run_cfg.algo.scale_rewards}'")
