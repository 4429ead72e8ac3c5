"""OREO: soft-Bellman value and policy losses (ALGORITHMS.md §6) at token, step or response level,
a separate value model (the policy's body + a zero-initialised head), the frozen starting policy
as reference; critic step then actor step per minibatch. The round's value/ directory is what
`reasoner decode scorer.kind=value` reads."""

from __future__ import annotations

from dataclasses import dataclass

from reasoner.algos.offline.base import OfflineAlgorithm, on_device
from reasoner.config import AlgoConfig
from reasoner.errors import UserError


@dataclass
class OREOConfig(AlgoConfig):
    name: str = "oreo"
    level: str = "token"  # token | step | response
    oreo_beta: float = 0.03
    kl_coef: float = 0.01  # alpha
    kl_estimator: str = "full"  # full (whole vocabulary) | k3
    value_lr: float = 3e-5  # conf/algo/oreo.yaml: chosen on the validation split


class OREO(OfflineAlgorithm):
    name = "oreo"
    Config = OREOConfig

    @classmethod
    def validate(cls, run_cfg) -> None:
        from reasoner.offline.objectives import KL_ESTIMATORS, LEVELS

        a = run_cfg.algo
        for ok, message in [
            (a.level in LEVELS, f"algo.level must be one of {', '.join(LEVELS)}, got '{a.level}'"),
            (a.kl_estimator in KL_ESTIMATORS,
             f"algo.kl_estimator must be one of {', '.join(KL_ESTIMATORS)} for oreo, got '{a.kl_estimator}'"),
            (a.oreo_beta > 0, f"algo.oreo_beta must be > 0 (got {a.oreo_beta})"),
            (a.kl_coef >= 0, f"algo.kl_coef must be >= 0 (got {a.kl_coef})"),
            (a.value_lr > 0, f"algo.value_lr must be > 0 (got {a.value_lr})"),
        ]:
            if not ok:
                raise UserError(f"config: {message}")

    def setup(self, policy, model_cfg, value_cfg, pad_id: int, total_steps: int) -> None:
        from reasoner.models import load_reference, load_value_model
        from reasoner.train.recipe import Optim

        self.policy, self.pad_id = policy, pad_id
        self.reference = load_reference(model_cfg, policy)
        self.value = load_value_model(value_cfg, policy)
        self.value.train()
        self.models = {"policy": policy, "value": self.value}
        self.opts = {"policy": self.policy_optim(policy, total_steps),
                     "value": Optim(self.value, "value", self.cfg.value_lr, self.run_cfg.optim, total_steps)}

    def update(self, items: list) -> dict:
        from reasoner.offline import objectives as obj
        from reasoner.offline.data import collate
        from reasoner.train.recipe import step_together
        from reasoner.utils.guard import check_loss

        a = self.cfg
        batch = on_device(collate(items, self.pad_id), self.policy)
        v_loss, p_loss, m = obj.oreo_losses(self.policy, self.value, self.reference, batch, a.level, a.oreo_beta,
                                            a.kl_coef, a.kl_estimator)
        check_loss("value loss", v_loss)
        check_loss("policy loss", p_loss)
        self.opts["value"].backward(v_loss)   # critic: reaches only the value model (rho is stop-gradiented)
        self.opts["policy"].backward(p_loss)   # actor: reaches only the policy (V entered detached, from before the critic step)
        m["value_grad_norm"], m["grad_norm"] = step_together(self.opts["value"], self.opts["policy"])
        m["loss"] = float(p_loss.detach())
        m["lr"] = self.opts["policy"].lr
        return m

    def save_final(self, out_dir, tokenizer) -> dict:
        self.value.eval()
        return {"value_dir": str(self.value.save(out_dir / "value", tokenizer))}
