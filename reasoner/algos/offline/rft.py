"""RFT (rejection-sampling fine-tuning, the OREO paper's baseline): SFT on the correct samples."""

from __future__ import annotations

from dataclasses import dataclass

from reasoner.algos.offline.base import OfflineAlgorithm, on_device, policy_step
from reasoner.config import AlgoConfig
from reasoner.errors import UserError


@dataclass
class RFTConfig(AlgoConfig):
    name: str = "rft"


class RFT(OfflineAlgorithm):
    name = "rft"
    Config = RFTConfig

    @classmethod
    def check_data(cls, trajs, path: str) -> None:
        if not any(t.reward >= 1.0 for t in trajs):
            raise UserError(f"{path}: no correct trajectories (reward 1) to fine-tune on (algo=rft)")

    @classmethod
    def select(cls, seqs: list) -> list:
        return [s for s in seqs if s.reward >= 1.0]

    def setup(self, policy, model_cfg, value_cfg, pad_id: int, total_steps: int) -> None:
        self.policy, self.pad_id = policy, pad_id
        self.models = {"policy": policy}
        self.opts = {"policy": self.policy_optim(policy, total_steps)}

    def update(self, items: list) -> dict:
        from reasoner.offline import objectives as obj
        from reasoner.offline.data import collate

        batch = on_device(collate(items, self.pad_id), self.policy)
        return policy_step("RFT loss", *obj.rft_loss(self.policy, batch), self.opts["policy"])
