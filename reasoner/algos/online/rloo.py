"""RLOO: A_i = R_i - mean_{j != i} R_j; TRL's sequence-level clipped ratio with the KL as a reward
penalty, or the token-level surrogate (ALGORITHMS.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reasoner.algos.online.base import GroupAlgorithm, GroupConfig
from reasoner.errors import UserError


@dataclass
class RLOOConfig(GroupConfig):
    name: str = "rloo"
    importance_level: str = "sequence"  # sequence (TRL's RLOO) | token
    normalize_advantages: bool = False  # whiten advantages over the batch
    kl_estimator: str = "reward"


class RLOO(GroupAlgorithm):
    name = "rloo"
    Config = RLOOConfig
    estimator = "rloo"

    def __init__(self, run_cfg):
        super().__init__(run_cfg)
        self.importance_level = self.cfg.importance_level

    @classmethod
    def validate(cls, run_cfg) -> None:
        super().validate(run_cfg)
        a = run_cfg.algo
        if a.importance_level not in ("token", "sequence"):
            raise UserError(f"config: algo.importance_level must be token or sequence, got '{a.importance_level}'")
        if a.importance_level == "sequence" and a.beta != 0 and a.kl_estimator != "reward":
            raise UserError("config: algo.importance_level=sequence takes its KL as a reward penalty: set algo.kl_estimator=reward")
        if a.importance_level == "sequence" and a.dual_clip is not None:
            raise UserError("config: algo.dual_clip is a token-level clip: set algo.importance_level=token or algo.dual_clip=null")

    def post_process(self, advantages: torch.Tensor) -> torch.Tensor:
        from reasoner.algos import normalize

        return normalize(advantages) if self.cfg.normalize_advantages else advantages
