"""What a trainer is to the one loop (`reasoner.train.loop.train`): a `Recipe`.

A recipe knows what one optimisation step does and what it trains; the loop owns everything
around the steps (progress, tokens/s, the step guard's stop, checkpoints and exact resume,
metric sinks, the eval hook, the final save and summary.json). SFT, PRM training, offline RL
(each round) and online RL are recipes; so is anything a user writes against this protocol.

Also here: the pieces recipes share, an optimiser bundle (`Optim`: AdamW, its schedule, its
guard) and the epoch walk over a data set (`EpochBatches`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import torch

from reasoner.utils.guard import StepGuard, guarded_step
from reasoner.utils.train import build_optimizer, build_scheduler, epoch_order


class Step(NamedTuple):
    """What one `train_step` returns: the step's metrics and how many tokens it processed."""

    metrics: dict
    tokens: int = 0


@runtime_checkable
class Recipe(Protocol):
    name: str  # names the run in logs and errors: "train-sft", "train-rl", "train-rl oreo round 1/2"
    total_steps: int

    def setup(self, out_dir: Path) -> None:
        """Build what training needs (optimisers, generators, extra models); called once by
        the loop before it resumes. Whatever can fail on user input belongs in the constructor,
        so that a bad input leaves nothing written."""

    def start(self, step: int) -> None:
        """Called once with the step the run starts from (0, or the resumed checkpoint's)."""

    def train_step(self, step: int) -> Step:
        """Run optimisation step `step` (0-based: steps done before it). A loss, gradient or
        update the guard refuses raises `utils.guard.RefusedStep`."""

    def models(self) -> dict[str, torch.nn.Module]:
        """The models whose trainable weights a checkpoint holds (checked finite before the final save)."""

    def state_dict(self) -> dict:
        """Everything else a checkpoint must hold to resume exactly (optimisers, schedules, counters)."""

    def load_state_dict(self, state: dict) -> None:
        """Inverse of state_dict (state also carries the checkpoint's "step")."""

    def evaluate(self) -> float | None:
        """Held-out accuracy now (the `eval_every` hook), or None when the recipe has none."""

    def save_final(self, out_dir: Path, last_eval: float | None) -> dict:
        """Write the final model(s) under out_dir; return the fields of summary.json."""

    def describe(self) -> str:
        """One line logged when training starts."""

    def close(self) -> None:
        """Release what setup started (a generation engine in its own process); called by the
        loop when training ends, also after a failure."""


class RecipeBase:
    """Defaults for the optional parts of the protocol."""

    name = "train"
    total_steps = 0
    headline: tuple[str, ...] = ("loss",)  # metrics shown by the progress bar / line
    eval_at_end = True  # evaluate at the last step too (False: save_final reports the final accuracy)

    def setup(self, out_dir: Path) -> None:
        pass

    def start(self, step: int) -> None:
        pass

    def evaluate(self) -> float | None:
        return None

    def describe(self) -> str:
        return f"{self.name}: {self.total_steps} steps"

    def close(self) -> None:
        pass


class Optim:
    """One model's AdamW under the run's scale-out strategy (`reasoner.dist`: single, DDP,
    DeepSpeed), its LR schedule (None: a constant lr) and its step guard."""

    def __init__(self, model: torch.nn.Module, name: str, lr: float, optim_cfg, total_steps: int | None = None):
        """AdamW over `model`'s trainable parameters; the strategy is given the model itself
        (ZeRO-3 partitions its weights and gathers them through hooks on its modules)."""
        from reasoner import dist

        self.optimizer = build_optimizer(model.parameters(), lr, optim_cfg.weight_decay, optim_cfg.betas)
        self.strategy = dist.wrap(model, self.optimizer)
        self.scheduler = (None if total_steps is None else
                          build_scheduler(self.optimizer, optim_cfg.schedule, optim_cfg.warmup_steps, total_steps))
        self.guard = StepGuard.for_config(self.optimizer, name, optim_cfg)

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0] if self.scheduler is not None else self.optimizer.param_groups[0]["lr"]

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), as the strategy needs it (DeepSpeed sees every micro-batch)."""
        self.strategy.backward(loss)

    def step(self) -> float:
        """One guarded step (then the schedule advances and the gradients are cleared); the gradient norm."""
        return step_together(self)[0]

    def state_dict(self) -> dict:
        state = {"optimizer": self.strategy.state_dict()}
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.strategy.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


def step_together(*optims: Optim) -> list[float]:
    """Step several optimisers as one (none steps unless every gradient is finite, all undone if
    one update is refused: `utils.guard.guarded_step`); then their schedules advance and their
    gradients are cleared. Returns the gradient norms."""
    norms = guarded_step(*(o.guard for o in optims))
    for o in optims:
        if o.scheduler is not None:
            o.scheduler.step()
        o.strategy.zero_grad()
    return norms


@dataclass(frozen=True)
class EpochBatches:
    """Which items step k trains on. Each epoch is a shuffle seeded by (seed, epoch), so the walk
    is a pure function of the step and a resumed run sees the same batches.

    full=True: every batch has `size` items; an epoch is n // size batches (at least one) and a
    batch of a short epoch wraps around it (SFT, PRM). full=False: ceil(n / size) batches, the
    last one smaller (offline RL).
    """

    n: int
    size: int
    seed: int
    full: bool = True

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.n // self.size) if self.full else max(1, math.ceil(self.n / self.size))

    def total(self, epochs: float) -> int:
        """Steps in `epochs` epochs (at least one)."""
        return max(1, math.ceil(epochs * self.steps_per_epoch))

    def epoch(self, steps_done: int) -> float:
        """Epochs completed after `steps_done` steps (the `epoch` metric)."""
        return round(steps_done / self.steps_per_epoch, 3)

    def indices(self, step: int) -> list[int]:
        epoch, offset = divmod(step, self.steps_per_epoch)
        order = epoch_order(self.n, self.seed, epoch)
        if self.full:
            return [order[(offset * self.size + i) % len(order)] for i in range(self.size)]
        return order[offset * self.size:(offset + 1) * self.size]


def pad_id(tokenizer) -> int:
    """The id batches are padded with (EOS when the tokenizer has no pad token)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def device_of(model) -> torch.device:
    return next(model.parameters()).device
