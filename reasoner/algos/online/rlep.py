"""RLEP: GRPO over groups of n fresh samples + up to M verified-correct answers replayed from a
pool (a collect output, an earlier run's pool.jsonl, or this run's own with pool_grow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from reasoner.algos.online.grpo import GRPO, GRPOConfig
from reasoner.errors import UserError


@dataclass
class RLEPConfig(GRPOConfig):
    name: str = "rlep"
    eps_high: float = 0.28
    dual_clip: Optional[float] = 10.0
    loss_aggregation: str = "token-mean"
    pool_file: Optional[str] = None  # verified-correct trajectories (a collect output or an earlier run's pool.jsonl)
    replay: int = 2  # M pooled answers appended to each group
    pool_grow: bool = False  # also add this run's verified-correct rollouts to the pool


class RLEP(GRPO):
    name = "rlep"
    Config = RLEPConfig

    def __init__(self, run_cfg):
        from reasoner.rl.pool import ReplayPool

        super().__init__(run_cfg)
        self.pool = ReplayPool.from_file(self.cfg.pool_file) if self.cfg.pool_file else ReplayPool()
        self.replay = self.cfg.replay

    @classmethod
    def validate(cls, run_cfg) -> None:
        super().validate(run_cfg)
        a = run_cfg.algo
        if not a.pool_file and not a.pool_grow:
            raise UserError("config: algo=rlep needs algo.pool_file (verified-correct trajectories from `reasoner collect` "
                            "or an earlier run's pool.jsonl) or algo.pool_grow=true")
        if a.replay < 0:
            raise UserError(f"config: algo.replay must be >= 0, got {a.replay}")

    @property
    def group_extra(self) -> int:
        return self.cfg.replay

    def state_dict(self) -> dict:
        return {"pool": self.pool.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "pool" in state:
            self.pool.load_state_dict(state["pool"])

    def on_rollouts(self, samples, correct_records: list[dict]) -> dict:
        if self.cfg.pool_grow:
            for rec in correct_records:
                self.pool.add(rec["problem_id"], rec["response"])
        return {"replayed": sum(1 for s in samples if not s.fresh), "pool_size": len(self.pool)}
