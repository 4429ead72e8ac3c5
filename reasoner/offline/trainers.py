"""One trainer per offline algorithm: owns its models and optimisers and does one update.

Each exposes `items` (what an epoch shuffles), `models` and `optim_state()` / `load_optim_state()`
for checkpoints, and `update(items) -> metrics`. Every optimiser steps through the guard
(utils/guard.py): a non-finite loss or gradient, or a non-finite or exploding update, raises
RefusedStep before any weight changes (or with the step undone).
"""

from __future__ import annotations

import torch

from reasoner.offline import objectives as obj
from reasoner.offline.data import collate
from reasoner.utils.guard import StepGuard, check_loss, guarded_step
from reasoner.utils.train import build_optimizer, build_scheduler


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


class _Opt:
    """An optimiser + scheduler + the guard (gradient clipping included) for one model."""

    def __init__(self, model, name, lr, optim_cfg, total_steps):
        self.optimizer = build_optimizer(model.parameters(), lr, optim_cfg.weight_decay, optim_cfg.betas)
        self.scheduler = build_scheduler(self.optimizer, optim_cfg.schedule, optim_cfg.warmup_steps, total_steps)
        self.guard = StepGuard.for_config(self.optimizer, name, optim_cfg)

    def step(self) -> float:
        return _step(self)[0]

    def state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def _step(*opts: _Opt) -> list[float]:
    """One guarded step of the optimisers together (no model steps unless all gradients are
    finite); then their schedules advance. Returns the gradient norms."""
    norms = guarded_step(*(o.guard for o in opts))
    for o in opts:
        o.scheduler.step()
        o.optimizer.zero_grad(set_to_none=True)
    return norms


class OREOTrainer:
    """Critic and actor step per minibatch; V in the actor loss is from before the critic step."""

    def __init__(self, policy, value, reference, seqs, pad_id, cfg, total_steps):
        self.policy, self.value, self.reference, self.items, self.pad_id = policy, value, reference, seqs, pad_id
        self.algo = cfg.algo
        self.models = {"policy": policy, "value": value}
        self.opts = {"policy": _Opt(policy, "policy", cfg.optim.lr, cfg.optim, total_steps),
                     "value": _Opt(value, "value", cfg.algo.value_lr, cfg.optim, total_steps)}

    def update(self, items) -> dict:
        batch = _to(collate(items, self.pad_id), _device(self.policy))
        v_loss, p_loss, m = obj.oreo_losses(self.policy, self.value, self.reference, batch, self.algo.level,
                                            self.algo.oreo_beta, self.algo.kl_coef, self.algo.kl_estimator)
        check_loss("value loss", v_loss)
        check_loss("policy loss", p_loss)
        v_loss.backward()   # critic: reaches only the value model (rho is stop-gradiented)
        p_loss.backward()   # actor: reaches only the policy (V entered detached, from before the critic step)
        m["value_grad_norm"], m["grad_norm"] = _step(self.opts["value"], self.opts["policy"])
        m["loss"] = float(p_loss.detach())
        m["lr"] = self.opts["policy"].scheduler.get_last_lr()[0]
        return m

    def optim_state(self) -> dict:
        return {k: o.state() for k, o in self.opts.items()}

    def load_optim_state(self, state: dict) -> None:
        for k, o in self.opts.items():
            o.load(state[k])


class RFTTrainer:
    """Rejection-sampling fine-tuning: SFT on the correct samples only."""

    def __init__(self, policy, seqs, pad_id, cfg, total_steps):
        self.policy, self.pad_id = policy, pad_id
        self.items = [s for s in seqs if s.reward >= 1.0]
        self.models = {"policy": policy}
        self.opts = {"policy": _Opt(policy, "policy", cfg.optim.lr, cfg.optim, total_steps)}

    def update(self, items) -> dict:
        batch = _to(collate(items, self.pad_id), _device(self.policy))
        return _policy_step("RFT loss", *obj.rft_loss(self.policy, batch), self.opts["policy"])

    optim_state = OREOTrainer.optim_state
    load_optim_state = OREOTrainer.load_optim_state


class DPOTrainer:
    """DPO on (correct, incorrect) answer pairs of the same problem against the frozen reference."""

    def __init__(self, policy, reference, pairs, pad_id, cfg, total_steps):
        self.policy, self.reference, self.items, self.pad_id, self.beta = policy, reference, pairs, pad_id, cfg.algo.dpo_beta
        self.models = {"policy": policy}
        self.opts = {"policy": _Opt(policy, "policy", cfg.optim.lr, cfg.optim, total_steps)}

    def update(self, items) -> dict:
        dev = _device(self.policy)
        chosen = _to(collate([c for c, _ in items], self.pad_id), dev)
        rejected = _to(collate([r for _, r in items], self.pad_id), dev)
        return _policy_step("DPO loss", *obj.dpo_losses(self.policy, self.reference, chosen, rejected, self.beta),
                            self.opts["policy"])

    optim_state = OREOTrainer.optim_state
    load_optim_state = OREOTrainer.load_optim_state


def _policy_step(what: str, loss, metrics: dict, opt) -> dict:
    """Backward + one optimiser step of a single-model objective (RFT, DPO); its metrics."""
    check_loss(what, loss)
    loss.backward()
    metrics["grad_norm"] = opt.step()
    metrics["loss"] = float(loss.detach())
    metrics["lr"] = opt.scheduler.get_last_lr()[0]
    return metrics
