"""The one guard every trainer steps its optimisers through: a step that would make the weights
non-finite or blow them up is refused, and nothing non-finite is ever saved.

Checked, in order, for each optimiser step:
- the loss (`check_loss`, before backward);
- the gradient norm, after clipping's norm computation and before `optimizer.step()`: a NaN/inf
  gradient must never reach the optimiser, whose moments it would poison for good (AdamW's fused
  kernel included);
- after the step: the parameters are finite and the update is not an explosion, i.e.
  ||new - old|| / ||old|| <= max_update_ratio over all of the optimiser's parameters. Adam's step is
  ~lr per element whatever the gradient's size (a 1e-11 gradient of float noise moves a weight by
  ~lr/1e3), and weight decay multiplies weights by (1 - lr * wd) with no gradient at all, so a
  broken learning rate shows up in the update, not in the loss or the gradient.
A refused after-step check restores the parameters (the optimiser's moments are not: the run
stops, and the last checkpoint is what resumes); measuring and undoing the update costs one copy
of the trainable parameters during the step (optim.max_update_ratio=null: no copy, and only the
finiteness of the new parameters is checked). `guarded_step` steps several optimisers as one
(PPO's policy and critic): all gradients are checked before any of them steps.
The optimiser steps through its scale-out strategy (`reasoner.dist`): DDP averages the gradients
over the ranks before they are measured; under DeepSpeed the norm is known only after its step,
so a non-finite one is caught after the step and the update undone like an exploded one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reasoner.errors import UserError


class RefusedStep(RuntimeError):
    """A loss, gradient or update that the guard would not let through; the message says what."""


def check_loss(name: str, loss) -> None:
    """Raise RefusedStep if `loss` (a tensor or a number) is NaN/inf."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise RefusedStep(f"{name} is {value}")


@dataclass
class StepGuard:
    """One optimiser (its parameters are those it steps), named in messages ("policy", "critic")."""

    optimizer: torch.optim.Optimizer
    name: str = "policy"
    max_grad_norm: float | None = None  # clip to this first (None: measure only)
    max_update_ratio: float | None = 1.0  # refuse ||delta|| / ||params|| above this (None: finiteness only)
    params: list[torch.nn.Parameter] = field(init=False, repr=False)
    strategy: object = field(init=False, repr=False)  # how the optimiser steps across ranks (reasoner.dist)
    _snapshot: list[torch.Tensor] | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        from reasoner.dist import SingleStrategy, strategy_of

        if self.max_update_ratio is not None and not self.max_update_ratio > 0:
            raise UserError(f"config: optim.max_update_ratio must be > 0 (or null: off), got {self.max_update_ratio}")
        self.strategy = strategy_of(self.optimizer) or SingleStrategy().wrap(None, self.optimizer)
        self.params = self.strategy.update_views()  # ZeRO-3: this rank's partitions (sums made global)

    @classmethod
    def for_config(cls, optimizer, name: str, optim_cfg) -> "StepGuard":
        """The guard of `optimizer` with the run's optim.max_grad_norm / optim.max_update_ratio."""
        return cls(optimizer, name, optim_cfg.max_grad_norm, optim_cfg.max_update_ratio)

    def check_before_step(self) -> float | None:
        """Make the gradients global (the strategy: DDP all-reduces them), clip them and return
        their (pre-clip) norm; RefusedStep if it is not finite. None when only the step knows
        the norm (DeepSpeed): it is checked after the step."""
        value = self.strategy.clip(self.max_grad_norm)
        _check_norm(self.name, value)
        return value

    def snapshot(self) -> None:
        """Remember the parameters, to measure the update and undo it (only with an update bound)."""
        if self.max_update_ratio is not None:
            self._snapshot = [p.detach().clone() for p in self.params]

    def check_after_step(self) -> None:
        """RefusedStep if the parameters became non-finite or moved more than the bound; the
        parameters are restored to the snapshot (when one was taken) before raising."""
        _check_after_step([self])

    def problem_after_step(self) -> str | None:
        """What is wrong with the parameters just stepped (non-finite, exploded), or None."""
        if not self.params:
            return None
        bad = not bool(torch.stack([torch.isfinite(p).all() for p in self.params]).all())
        if self.strategy.sum_over_ranks(float(bad)) > 0:
            return f"{self.name} parameters became non-finite"
        if self._snapshot is not None:
            old_norm = math.sqrt(self.strategy.sum_over_ranks(_total_norm(self._snapshot) ** 2))
            delta = math.sqrt(self.strategy.sum_over_ranks(
                _total_norm([p.detach() - o for p, o in zip(self.params, self._snapshot)]) ** 2))
            ratio = delta / max(old_norm, 1e-12)
            if not math.isfinite(ratio) or ratio > self.max_update_ratio:
                return (f"{self.name} update exploded (|delta|/|params| = {ratio:.3g} > "
                        f"optim.max_update_ratio={self.max_update_ratio:g}: is the learning rate too large?)")
        return None

    def release(self, undo: bool) -> bool:
        """Drop the snapshot, first putting it back into the parameters if `undo`; whether it did."""
        old, self._snapshot = self._snapshot, None
        if not undo or old is None:
            return False
        with torch.no_grad():
            for p, o in zip(self.params, old):
                p.copy_(o)
        return True

    def step(self) -> float:
        """check_before_step, optimizer.step(), check_after_step; returns the gradient norm."""
        return guarded_step(self)[0]


def guarded_step(*guards: StepGuard) -> list[float]:
    """Step several optimisers as one: every gradient norm is checked before any optimiser
    steps, and every update after all of them did; if one is refused, all are undone."""
    norms = [g.check_before_step() for g in guards]
    for g in guards:
        g.snapshot()
    late = [g.strategy.step() for g in guards]
    norms = [n if n is not None else m for n, m in zip(norms, late)]
    _check_after_step(guards, [(g.name, m) for g, m in zip(guards, late) if m is not None])
    return norms


def _check_norm(name: str, value: float | None) -> None:
    if value is not None and not math.isfinite(value):
        raise RefusedStep(f"{name} gradient norm is {value}")


def _check_after_step(guards, late_norms=()) -> None:
    """late_norms: (name, norm) of the optimisers whose norm only their step knew (DeepSpeed)."""
    problems = [p for p in (g.problem_after_step() for g in guards) if p is not None]
    problems += [f"{name} gradient norm is {n}" for name, n in late_norms if not math.isfinite(n)]
    undone = [g.release(undo=bool(problems)) for g in guards]
    if problems:
        raise RefusedStep(problems[0] + ("" if all(undone) else " (not undone: optim.max_update_ratio is off)"))


def _total_norm(tensors) -> float:
    """The 2-norm of all tensors together (one host sync), accumulated in float64 so that weights
    of 1e30 give a number, not an overflow (float32 on MPS, which has no float64)."""
    parts = [torch.linalg.vector_norm(t.detach(), dtype=torch.float32 if t.device.type == "mps" else torch.float64)
             for t in tensors]
    return float(torch.linalg.vector_norm(torch.stack(parts))) if parts else 0.0


# --------------------------------------------------------------------------- saving and stopping


def require_finite(tensors: dict[str, torch.Tensor], what: str, ckpt_root: Path | None = None) -> None:
    """UserError naming the first non-finite floating tensor of `tensors` ({name: tensor}):
    `what` (a checkpoint, a final model) is not written."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{what} not saved: {name} is not finite ({last_good(ckpt_root)})")


def require_finite_model(models: dict, what: str, ckpt_root: Path | None = None) -> None:
    """require_finite over every parameter of each model of {name: module} (before a final save)."""
    for key, model in models.items():
        require_finite({f"{key} {n}": p.detach() for n, p in model.named_parameters()}, what, ckpt_root)


def last_good(ckpt_root: Path | None) -> str:
    """'last good checkpoint kept: DIR' or that none was saved yet."""
    from reasoner.utils.checkpoint import list_checkpoints

    kept = list_checkpoints(ckpt_root) if ckpt_root is not None else []
    return f"last good checkpoint kept: {kept[-1]}" if kept else "no checkpoint had been saved yet"


def stop_error(command: str, step: int, err: RefusedStep, ckpt_root: Path) -> UserError:
    """The one line a trainer stops with when the guard refused step `step` (1-based)."""
    return UserError(f"{command}: {err} at step {step}; step refused, stopped without saving ({last_good(ckpt_root)})")
