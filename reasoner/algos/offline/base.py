"""What an offline RL algorithm is to the offline recipe (`reasoner.offline.recipe.OfflineRecipe`).

The recipe loads the round's policy, tokenises the trajectories (`offline.data.Sequence`) and
walks the algorithm's items in seeded epochs; an algorithm says which items an epoch walks
(`select`), what data it cannot train on (`check_data`), builds its models and optimisers
(`setup`) and does one update on a batch of items (`update -> metrics`). Every optimiser steps
through its guard (`train.recipe.Optim`).
"""

from __future__ import annotations

from reasoner.config import AlgoConfig
from reasoner.utils.guard import check_loss


class OfflineAlgorithm:
    """Base of the offline algorithms; one instance per round."""

    name = "offline"
    kind = "offline"
    Config: type = AlgoConfig

    def __init__(self, run_cfg):
        self.run_cfg, self.cfg = run_cfg, run_cfg.algo
        self.opts: dict = {}
        self.models: dict = {}

    @classmethod
    def validate(cls, run_cfg) -> None:
        """Checks of the algorithm's config that need no model or data (UserError, one line)."""

    @classmethod
    def check_data(cls, trajs, path: str) -> None:
        """UserError when the trajectories give this algorithm nothing to train on."""

    @classmethod
    def select(cls, seqs: list) -> list:
        """The items an epoch walks (all sequences by default)."""
        return list(seqs)

    def setup(self, policy, model_cfg, value_cfg, pad_id: int, total_steps: int) -> None:
        raise NotImplementedError

    def update(self, items: list) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"optim": {k: o.state_dict() for k, o in self.opts.items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.opts.items():
            o.load_state_dict(state["optim"][k])

    def save_final(self, out_dir, tokenizer) -> dict:
        """Write what the algorithm trained beside the policy; its summary fields."""
        return {}

    def policy_optim(self, policy, total_steps: int):
        from reasoner.train.recipe import Optim

        return Optim(policy, "policy", self.run_cfg.optim.lr, self.run_cfg.optim, total_steps)


def policy_step(what: str, loss, metrics: dict, opt) -> dict:
    """Backward + one optimiser step of a single-model objective (RFT, DPO); its metrics."""
    check_loss(what, loss)
    opt.backward(loss)
    metrics["grad_norm"] = opt.step()
    metrics["loss"] = float(loss.detach())
    metrics["lr"] = opt.lr
    return metrics


def on_device(batch: dict, model) -> dict:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}
