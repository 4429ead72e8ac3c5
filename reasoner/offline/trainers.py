"""One trainer per offline algorithm: owns its models and optimisers and does one update.

Each exposes `items` (what an epoch shuffles), `models` and `optim_state()` / `load_optim_state()`
for checkpoints, and `update(items) -> metrics` (raises FloatingPointError on a non-finite loss
before any weight changes).
"""

from __future__ import annotations

import math

import torch

from reasoner.offline import objectives as obj
from reasoner.offline.data import collate
from reasoner.utils.train import build_optimizer, build_scheduler


def _finite(name: str, value: torch.Tensor) -> None:
    v = float(value.detach())
    if not math.isfinite(v):
        raise FloatingPointError(f"{name} became {v}")


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


class _Opt:
    """An optimiser + scheduler + gradient clipping for one model."""

    def __init__(self, model, lr, optim_cfg, total_steps):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, lr, optim_cfg.weight_decay, optim_cfg.betas)
        self.scheduler = build_scheduler(self.optimizer, optim_cfg.schedule, optim_cfg.warmup_steps, total_steps)
        self.max_norm = optim_cfg.max_grad_norm

    def step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class OREOTrainer:
    """Critic step then actor step per minibatch; V in the actor loss is from before the critic step."""

    def __init__(self, policy, value, reference, seqs, pad_id, cfg, total_steps):
        self.policy, self.value, self.reference, self.items, self.pad_id = policy, value, reference, seqs, pad_id
        self.algo = cfg.algo
        self.models = {"policy": policy, "value": value}
        self.opts = {"policy": _Opt(policy, cfg.optim.lr, cfg.optim, total_steps),
                     "value": _Opt(value, cfg.algo.value_lr, cfg.optim, total_steps)}

    def update(self, items) -> dict:
        batch = _to(collate(items, self.pad_id), _device(self.policy))
        v_loss, p_loss, m = obj.oreo_losses(self.policy, self.value, self.reference, batch, self.algo.level,
                                            self.algo.oreo_beta, self.algo.kl_coef, self.algo.kl_estimator)
        _finite("value loss", v_loss)
        _finite("policy loss", p_loss)
        v_loss.backward()   # critic: reaches only the value model (rho is stop-gradiented)
        m["value_grad_norm"] = self.opts["value"].step()
        p_loss.backward()   # actor: V entered detached, computed before the critic step
        m["grad_norm"] = self.opts["policy"].step()
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
        self.opts = {"policy": _Opt(policy, cfg.optim.lr, cfg.optim, total_steps)}

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
        self.opts = {"policy": _Opt(policy, cfg.optim.lr, cfg.optim, total_steps)}

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
    _finite(what, loss)
    loss.backward()
    metrics["grad_norm"] = opt.step()
    metrics["loss"] = float(loss.detach())
    metrics["lr"] = opt.scheduler.get_last_lr()[0]
    return metrics
