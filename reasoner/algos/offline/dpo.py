"""DPO (the OREO paper's baseline) on (correct, incorrect) answer pairs of the same problem,
against the frozen starting policy."""

from __future__ import annotations

from dataclasses import dataclass

from reasoner.algos.offline.base import OfflineAlgorithm, on_device, policy_step
from reasoner.config import AlgoConfig
from reasoner.errors import UserError


@dataclass
class DPOConfig(AlgoConfig):
    name: str = "dpo"
    dpo_beta: float = 0.1


class DPO(OfflineAlgorithm):
    name = "dpo"
    Config = DPOConfig

    @classmethod
    def validate(cls, run_cfg) -> None:
        if run_cfg.algo.dpo_beta <= 0:
            raise UserError(f"config: algo.dpo_beta must be > 0 (got {run_cfg.algo.dpo_beta})")

    @classmethod
    def check_data(cls, trajs, path: str) -> None:
        kinds: dict[str, set] = {}
        for t in trajs:
            kinds.setdefault(t.problem_id, set()).add(t.reward >= 1.0)
        if not any(len(k) == 2 for k in kinds.values()):
            raise UserError(f"{path}: no problem has both a correct and an incorrect trajectory to pair (algo=dpo)")

    @classmethod
    def select(cls, seqs: list) -> list:
        from reasoner.offline.data import dpo_pairs

        return dpo_pairs(seqs)

    def setup(self, policy, model_cfg, value_cfg, pad_id: int, total_steps: int) -> None:
        from reasoner.models import load_reference

        self.policy, self.pad_id = policy, pad_id
        self.reference = load_reference(model_cfg, policy)
        self.models = {"policy": policy}
        self.opts = {"policy": self.policy_optim(policy, total_steps)}

    def update(self, items: list) -> dict:
        from reasoner.offline import objectives as obj
        from reasoner.offline.data import collate

        chosen = on_device(collate([c for c, _ in items], self.pad_id), self.policy)
        rejected = on_device(collate([r for _, r in items], self.pad_id), self.policy)
        return policy_step("DPO loss", *obj.dpo_losses(self.policy, self.reference, chosen, rejected, self.cfg.dpo_beta),
                           self.opts["policy"])
