"""How one model's optimiser steps across processes: single device, or DDP's all-reduce.

A strategy wraps one (model, optimizer) pair; the step guard (`utils.guard`) and the shared
optimiser bundle (`train.recipe.Optim`) talk to it, so every trainer runs under any strategy:

    s = strategy.wrap(model, optimizer)
    s.backward(loss)               # once per micro-batch
    norm = s.clip_and_step(1.0)    # the global gradient, clipped, one update
    s.state_dict() / s.load_state_dict(...) / s.unwrap(model)

Gradients are averaged over ranks (DDP's convention): a recipe that shards its batch scales its
per-rank loss by `loss_scale` so the average is the one-process gradient of the whole batch.
DDP here is DistributedDataParallel's arithmetic, one bucketed all-reduce of every gradient
at the step, rather than torch's module wrapper: the recipes also call their models outside a
forward (generation, reference passes), and accumulate micro-batches before the step, which
the wrapper would all-reduce each time unless told not to.
"""

from __future__ import annotations

import weakref

import torch

from reasoner.dist import context

_BY_OPTIMIZER: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def strategy_of(optimizer):
    """The strategy an optimiser was wrapped in (None: a plain optimiser)."""
    return _BY_OPTIMIZER.get(optimizer)


def backward(loss: torch.Tensor, optimizer) -> None:
    """loss.backward() through `optimizer`'s strategy (DeepSpeed must see every backward)."""
    s = strategy_of(optimizer)
    if s is None:
        loss.backward()
    else:
        s.backward(loss)


def trainable(params) -> list[torch.nn.Parameter]:
    return [p for p in params if p.requires_grad]


class SingleStrategy:
    """One process: gradients as they are, the optimiser's own step."""

    name = "single"

    def __init__(self, settings=None):
        self.settings = settings
        self.model = self.optimizer = None
        self.params: list[torch.nn.Parameter] = []

    def wrap(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        _BY_OPTIMIZER[optimizer] = self
        return self

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def reduce_gradients(self) -> None:
        """Make every rank's .grad the global gradient (nothing to do on one process)."""

    def clip(self, max_norm: float | None) -> float | None:
        """The global gradient norm before clipping to max_norm (None: measure only)."""
        self.reduce_gradients()
        grads = [p for p in self.params if p.grad is not None]
        if max_norm is not None:
            return float(torch.nn.utils.clip_grad_norm_(grads, max_norm))
        return float(torch.nn.utils.get_total_norm([p.grad for p in grads]))

    def step(self) -> float | None:
        """The update; a gradient norm when only the step knows it (DeepSpeed), else None."""
        self.optimizer.step()
        return None

    def clip_and_step(self, max_norm: float | None) -> float:
        norm = self.clip(max_norm)
        after = self.step()
        self.zero_grad()
        return norm if after is None else after

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def update_views(self) -> list[torch.Tensor]:
        """The tensors this rank measures the update on (the guard): its whole parameters here."""
        return self.params

    def sum_over_ranks(self, value: float) -> float:
        """A sum over update_views' entries made global (each rank already sees all of them here)."""
        return value

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)

    def unwrap(self, model):
        return model


class DDPStrategy(SingleStrategy):
    """Data parallel: rank 0's weights everywhere at the start, gradients averaged at each step."""

    name = "ddp"

    def wrap(self, model, optimizer):
        super().wrap(model, optimizer)
        if context.initialized():
            import torch.distributed as dist

            with torch.no_grad():
                for p in self.params:
                    dist.broadcast(p.data, src=0)
        return self

    def reduce_gradients(self) -> None:
        """One all-reduce per dtype of the flattened gradients (+ whether each has one: a
        parameter no rank gave a gradient keeps grad None, as AdamW then skips it)."""
        if not context.initialized() or context.world_size() == 1:
            return
        import torch.distributed as dist

        by_dtype: dict = {}
        for p in self.params:
            by_dtype.setdefault(p.dtype, []).append(p)
        for params in by_dtype.values():
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
                             + [torch.tensor([float(p.grad is not None) for p in params], dtype=params[0].dtype,
                                             device=params[0].device)])
            dist.all_reduce(flat)
            flat /= context.world_size()
            offset, n = 0, sum(p.numel() for p in params)
            has = flat[n:]
            for i, p in enumerate(params):
                piece = flat[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
                p.grad = piece.clone() if has[i] > 0 else None
