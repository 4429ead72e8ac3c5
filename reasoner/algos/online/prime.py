"""PRIME: an implicit PRM (a copy of the starting policy, its reference the frozen start) trained
online on verifier outcomes; leave-one-out baselines for the outcome and for the PRM's token
rewards, returns, summed, whitened; only groups whose accuracy is within accuracy_filter are
trained on (ALGORITHMS.md §5). run_dir/prm is an implicit-PRM directory (`scorer.kind=implicit`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from reasoner.algos.online.base import Advantages, ClippedConfig, OnlineAlgorithm, UpdateInputs
from reasoner.errors import UserError


@dataclass
class PRIMEConfig(ClippedConfig):
    name: str = "prime"
    num_iterations: int = 1
    gamma: float = 1.0
    prm_beta: float = 0.05  # the implicit PRM's beta: r_t = beta * (log pi_phi - log pi_ref)
    prm_lr: float = 1e-6
    accuracy_filter: list[float] = field(default_factory=lambda: [0.2, 0.8])


class PRIME(OnlineAlgorithm):
    name = "prime"
    Config = PRIMEConfig

    @classmethod
    def validate(cls, run_cfg) -> None:
        super().validate(run_cfg)
        a = run_cfg.algo
        if len(a.accuracy_filter) != 2 or not 0 <= a.accuracy_filter[0] <= a.accuracy_filter[1] <= 1:
            raise UserError(f"config: algo.accuracy_filter must be [low, high] within [0, 1], got {list(a.accuracy_filter)}")
        if a.prm_beta <= 0 or a.prm_lr <= 0:
            raise UserError(f"config: algo.prm_beta and algo.prm_lr must be > 0, got {a.prm_beta} and {a.prm_lr}")
        if run_cfg.reward.kind == "prm" and run_cfg.reward.prm_mode == "dense":
            raise UserError("config: algo=prime makes its own dense rewards (implicit PRM); use reward.prm_mode=final")

    def needs_reference(self) -> bool:
        return True

    def setup(self, recipe) -> None:
        from reasoner.models import is_peft, load_reference
        from reasoner.train.recipe import Optim

        self.prm = copy.deepcopy(recipe.model)
        if not is_peft(self.prm):
            self.prm.requires_grad_(True)
        self.prm.train()
        self.prm_ref = load_reference(recipe.cfg.model, self.prm) if is_peft(self.prm) else recipe.reference
        self.prm_opt = Optim(self.prm, "implicit PRM", self.cfg.prm_lr, recipe.cfg.optim)

    def models(self) -> dict:
        return {"prm": self.prm}

    def state_dict(self) -> dict:
        return {"prm_optimizer": self.prm_opt.strategy.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.prm_opt.strategy.load_state_dict(state["prm_optimizer"])

    def kept_groups(self, correct: list[bool], sizes: list[int]) -> list[int]:
        """Groups whose verifier accuracy lies within accuracy_filter."""
        lo, hi = self.cfg.accuracy_filter
        keep, start = [], 0
        for g, s in enumerate(sizes):
            acc = sum(correct[start:start + s]) / s
            if lo - 1e-9 <= acc <= hi + 1e-9:
                keep.append(g)
            start += s
        return keep

    def advantages(self, inputs: UpdateInputs) -> Advantages:
        from reasoner.algos import prime_advantages

        keep = self.kept_groups(inputs.correct, inputs.sizes)
        if not keep:
            return Advantages(None, inputs, {"kept_groups": 0, "skipped": 1})
        inputs = inputs.take_groups(keep)
        process, prm_metrics = self.process_rewards(inputs)
        adv = prime_advantages(inputs.outcome, process, inputs.mask, inputs.sizes[0], gamma=self.cfg.gamma, whiten=True)
        return Advantages(adv, inputs, {"kept_groups": len(keep), **prm_metrics})

    def process_rewards(self, inputs: UpdateInputs) -> tuple[torch.Tensor, dict]:
        """Update the implicit PRM on verifier outcomes (BCE), then read its token rewards
        r_t = beta * (log pi_phi - log pi_ref) for the policy's advantages. The PRM scores the
        rollouts as fixed data (like DPO), so its log-probs stay at temperature 1."""
        from reasoner.prm.losses import implicit_loss
        from reasoner.rl.batch import response_logprobs
        from reasoner.rl.update import no_grad_logprobs, no_grad_reference
        from reasoner.utils.guard import check_loss

        batch, mask, outcome, micro, beta = inputs.batch, inputs.mask, inputs.outcome, inputs.micro, self.cfg.prm_beta
        B = batch.input_ids.size(0)
        ref = no_grad_reference(self.prm_ref, batch, micro)
        self.prm_opt.optimizer.zero_grad(set_to_none=True)
        loss_sum, acc_sum = 0.0, 0.0
        for i in range(0, B, micro):
            sl = slice(i, i + micro)
            logp = response_logprobs(self.prm, batch.rows(sl))[0]
            loss, met = implicit_loss(logp, ref[sl], mask[sl], outcome[sl], beta)
            check_loss("implicit PRM loss", loss)
            n = logp.size(0)
            self.prm_opt.backward(loss * n / B)
            loss_sum += float(loss.detach()) * n
            acc_sum += met["outcome_acc"] * n
        self.prm_opt.guard.step()
        logp = no_grad_logprobs(self.prm, batch, micro)
        return beta * (logp - ref) * mask, {"prm_loss": loss_sum / B, "prm_acc": acc_sum / B}

    def save_final(self, out_dir, recipe) -> dict:
        from reasoner.prm.model import PRMSpec, save_prm
        from reasoner.prm.train import plain_reference

        self.prm.eval()
        spec = PRMSpec(kind="implicit", head="tokens", step_separator=recipe.task.step_separator,
                       beta=float(self.cfg.prm_beta), implicit_score="step", base_model=recipe.cfg.model.name_or_path)
        path = save_prm(self.prm, recipe.tokenizer, spec, out_dir / "prm",
                        reference_model=plain_reference(recipe.cfg.model, self.prm_ref))
        return {"prm_dir": str(path)}
