"""PPO: a critic (value model: a copy of the policy's body + zero-initialised head) trained beside
the policy; GAE(gamma, lambda) over token rewards (outcome on the last token), whitened; clipped
value loss; ppo_epochs x minibatches (ALGORITHMS.md §5). run_dir/critic is a value-model
directory `reasoner decode scorer.kind=value` reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from reasoner.algos.online.base import Advantages, ClippedConfig, OnlineAlgorithm, UpdateInputs
from reasoner.errors import UserError


@dataclass
class PPOConfig(ClippedConfig):
    name: str = "ppo"
    gamma: float = 1.0
    lam: float = 0.95
    value_clip: Optional[float] = 0.2
    ppo_epochs: int = 1
    critic_lr: float = 1e-4


class PPO(OnlineAlgorithm):
    name = "ppo"
    Config = PPOConfig
    epochs_key = "ppo_epochs"

    @classmethod
    def validate(cls, run_cfg) -> None:
        super().validate(run_cfg)
        if run_cfg.algo.critic_lr <= 0:
            raise UserError(f"config: algo.critic_lr must be > 0, got {run_cfg.algo.critic_lr}")

    def setup(self, recipe) -> None:
        from reasoner.models import load_value_model
        from reasoner.train.recipe import Optim

        self.critic = load_value_model(recipe.cfg.model, recipe.model).train()
        self.critic_opt = Optim(self.critic, "critic", self.cfg.critic_lr, recipe.cfg.optim)

    def models(self) -> dict:
        return {"critic": self.critic}

    def state_dict(self) -> dict:
        return {"critic_optimizer": self.critic_opt.strategy.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.critic_opt.strategy.load_state_dict(state["critic_optimizer"])

    def advantages(self, inputs: UpdateInputs) -> Advantages:
        from reasoner.algos import gae
        from reasoner.algos.masked import masked_whiten
        from reasoner.dist import masked_global_mean
        from reasoner.rl.update import no_grad_values

        mask, outcome = inputs.mask, inputs.outcome
        B = mask.size(0)
        token_r = torch.zeros_like(mask)
        last = (mask.sum(1) - 1).clamp(min=0).long()
        has = mask.sum(1) > 0
        token_r[torch.arange(B, device=mask.device)[has], last[has]] = outcome[has]
        if inputs.dense is not None:
            token_r = token_r + inputs.dense[0]
        if inputs.kl_reward:
            token_r = token_r - self.cfg.beta * (inputs.old_logp - inputs.ref_logp) * mask
        old_values = no_grad_values(self.critic, inputs.batch, inputs.micro)
        adv, returns = gae(token_r, old_values, mask, self.cfg.gamma, self.cfg.lam)
        critic = {"critic": self.critic, "critic_optimizer": self.critic_opt.optimizer, "old_values": old_values,
                  "returns": returns}
        metrics = {"value_mean": float((old_values * mask).sum() / mask.sum().clamp(min=1))}
        # whitened over every rank's rollouts (on one process: this batch)
        return Advantages(masked_whiten(adv, mask, mean=masked_global_mean), inputs, metrics, critic)

    def save_final(self, out_dir, recipe) -> dict:
        self.critic.eval()
        return {"critic_dir": str(self.critic.save(out_dir / "critic", recipe.tokenizer))}
