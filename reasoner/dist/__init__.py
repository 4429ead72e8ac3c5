"""Scale-out: the same trainers on one process or N (`reasoner launch --nproc N ...`).

context.py   who this process is (rank, world size), the process group, the collectives the loop uses
strategy.py  single device and DDP (one gradient all-reduce per step); the strategy registry
zero.py      DeepSpeed ZeRO stage 1/2/3 (and `full_weights`: ZeRO-3's weights gathered for a read)
shared_engine.py  one generation engine (vLLM) on rank 0 for every rank, fed the trained weights
launch.py    the torchrun command line of `reasoner launch`

`activate(cfg.dist)` (the loop does it) chooses the strategy every `train.recipe.Optim` built
afterwards is wrapped in; the step guard finds it from the optimiser (`strategy_of`), so no
trainer has distributed code beyond sharding its own batch (`shard`, `loss_scale`).
"""

from __future__ import annotations

from reasoner.dist.context import (all_sum, barrier, broadcast_object, gather_objects, init_from_env, initialized,
                                   is_main, mean_metrics, rank, shard, world_size)
from reasoner.dist.strategy import DDPStrategy, SingleStrategy, backward, strategy_of
from reasoner.errors import UserError

STRATEGIES = ("single", "ddp", "deepspeed")
_active = {"settings": None}


def check(settings) -> None:
    """UserError for a strategy that cannot run here (before anything loads or is written)."""
    if settings is None:
        return
    if settings.strategy not in STRATEGIES:
        from reasoner.config import closest

        guess = closest(settings.strategy, STRATEGIES)
        raise UserError(f"config: dist.strategy '{settings.strategy}' is not one of {', '.join(STRATEGIES)}"
                        + (f" (did you mean '{guess}'?)" if guess else ""))
    if settings.strategy == "deepspeed":
        from reasoner.dist.zero import check_settings

        check_settings(settings)


def activate(settings) -> None:
    """Join the process group (when launched by torchrun) and use `settings` (a DistConfig,
    None: single) for every optimiser wrapped from now on."""
    check(settings)
    init_from_env(settings.backend if settings is not None else "auto")
    _active["settings"] = settings


def new_strategy():
    """A fresh strategy of the active kind (single when nothing is active or on one process with ddp)."""
    settings = _active["settings"]
    kind = settings.strategy if settings is not None else "single"
    if kind == "deepspeed":
        from reasoner.dist.zero import DeepSpeedStrategy

        return DeepSpeedStrategy(settings)
    return DDPStrategy(settings) if kind == "ddp" else SingleStrategy(settings)


def wrap(model, optimizer):
    """`optimizer` (of `model`, or of bare parameters when model is None) under the active strategy."""
    return new_strategy().wrap(model, optimizer)


def full_weights(models, modify: bool = False):
    """A context in which every model of `models` holds its whole weights (ZeRO-3 gathers its
    partitions; every rank must enter; other strategies: nothing happens). For whatever reads
    or writes whole weights outside a training forward: generation, evaluation, checkpoints,
    the final save. modify=True keeps what rank 0 wrote into them."""
    from reasoner.dist.zero import full_weights as gathered

    return gathered(list(models), modify)


def batch_mean(total, count: float):
    """This rank's part of a mean over the global batch: its items' sum x N / the count over
    every rank. Averaged over the ranks (as gradients and metrics are) it is the whole batch's
    mean; on one process it is total / count (0 items count as 1, like `algos.masked_mean`)."""
    n = all_sum(float(count)) if initialized() else float(count)
    return total * (world_size() / max(1.0, n))


def masked_batch_mean(x, mask):
    """`algos.masked_mean(x, mask)` over the global batch (see batch_mean)."""
    return batch_mean((x * mask.to(x.dtype)).sum(), float(mask.sum()))


def masked_global_mean(x, mask):
    """The mean of x over the mask==1 entries of every rank's batch (a constant: no gradient);
    on one process `algos.masked_mean` (an empty mask gives 0)."""
    if not initialized():
        from reasoner.algos.masked import masked_mean

        return masked_mean(x, mask)
    import torch

    mask = mask.to(x.dtype)
    total, count = all_sum(float((x.detach() * mask).sum())), all_sum(float(mask.sum()))
    return torch.tensor(total / max(1.0, count), dtype=x.dtype, device=x.device)


def loss_scale(global_count: float) -> float:
    """What a sharded recipe multiplies its per-rank summed loss by: world_size / the global
    normaliser, so the ranks' averaged gradient is the whole batch's (and so is the mean metric)."""
    return world_size() / max(1.0, float(global_count))


__all__ = ["STRATEGIES", "DDPStrategy", "SingleStrategy", "activate", "all_sum", "backward", "barrier", "batch_mean",
           "broadcast_object", "check", "full_weights", "gather_objects", "init_from_env", "initialized", "is_main", "loss_scale",
           "masked_batch_mean", "masked_global_mean", "mean_metrics", "new_strategy", "rank", "shard", "strategy_of", "world_size", "wrap"]
