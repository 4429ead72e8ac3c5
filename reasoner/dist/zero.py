"""DeepSpeed ZeRO stage 1/2 as a strategy: optimiser state (1) and gradients (2) partitioned over ranks.

The recipe's own AdamW is handed to DeepSpeed as its client optimiser, so learning rates and the
schedule stay the recipe's. Micro-batches accumulate with the accumulation boundary held off;
at the step the boundary is set and a zero-valued backward through every parameter makes
DeepSpeed reduce what accumulated (the recipe never says which micro-batch is its last). The
gradient norm is known only after DeepSpeed's step, so a non-finite one is caught by the guard's
after-step check (the run stops; nothing is saved). A checkpoint holds every rank's partition
(gathered to rank 0, which writes it); it resumes at the same world size only. ZeRO-3 (which
partitions the weights themselves) is not offered: every recipe reads its full weights
outside a forward (generation, the guard, checkpoints).
"""

from __future__ import annotations

import json
import os

import torch

from reasoner.dist import context
from reasoner.dist.strategy import SingleStrategy
from reasoner.errors import UserError

STAGES = (1, 2)


def check_settings(settings) -> None:
    """UserError (before anything loads) for a stage this strategy does not run, or no deepspeed."""
    if settings.zero_stage not in STAGES:
        raise UserError(f"config: dist.zero_stage={settings.zero_stage} is not supported (1 or 2: the recipes read "
                        "full weights outside a forward, which ZeRO-3 partitions)")
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise UserError("config: dist.strategy=deepspeed needs the deepspeed package (pip install reasoner[deepspeed])")
    if settings.deepspeed_config:
        ds_config(settings)


def ds_config(settings) -> dict:
    """The DeepSpeed config: the user's json (dist.deepspeed_config) or fp32 ZeRO at dist.zero_stage.
    Batch sizes and accumulation belong to the recipe, so they are pinned to one micro-step."""
    if settings.deepspeed_config:
        try:
            with open(settings.deepspeed_config) as f:
                cfg = json.load(f)
        except (OSError, ValueError) as exc:
            raise UserError(f"dist.deepspeed_config '{settings.deepspeed_config}': {exc}") from None
        stage = (cfg.get("zero_optimization") or {}).get("stage", 0)
        if stage not in STAGES:
            raise UserError(f"dist.deepspeed_config '{settings.deepspeed_config}': zero_optimization.stage must be 1 or 2")
    else:
        cfg = {"zero_optimization": {"stage": settings.zero_stage}, "fp16": {"enabled": False},
               "bf16": {"enabled": False}}
    cfg.update({"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1, "steps_per_print": 10**12})
    cfg.pop("train_batch_size", None)
    return cfg


class _Holder(torch.nn.Module):
    """The module DeepSpeed is given: the optimiser's parameters (the same tensors as the model's)."""

    def __init__(self, params):
        super().__init__()
        self.params = torch.nn.ParameterList(params)


class DeepSpeedStrategy(SingleStrategy):
    name = "deepspeed"

    def wrap(self, model, optimizer):
        import deepspeed

        super().wrap(model, optimizer)
        if not context.initialized():  # one process without torchrun: a group of one, as DeepSpeed wants
            os.environ.setdefault("LOCAL_RANK", "0")
            context.init_alone(self.settings.backend)
        module = model if model is not None else _Holder(self.params)
        self.engine, self.ds_optimizer, _, _ = deepspeed.initialize(
            model=module, optimizer=optimizer, config=ds_config(self.settings), dist_init_required=False)
        self._accumulate()
        return self

    def _accumulate(self) -> None:
        self.engine.set_gradient_accumulation_boundary(False)

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)

    def clip(self, max_norm: float | None) -> float | None:
        self.ds_optimizer.clip_grad = float(max_norm) if max_norm is not None else 0.0
        self.engine.set_gradient_accumulation_boundary(True)
        self.engine.backward(torch.stack([(p * 0).sum() for p in self.params]).sum())
        return None

    def step(self) -> float | None:
        self.engine.step()
        self._accumulate()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def zero_grad(self) -> None:
        self.engine.zero_grad()

    def state_dict(self) -> dict:
        """Every rank's optimiser partition (moments and fp32 master weights), in rank order."""
        full = self.ds_optimizer.state_dict()
        mine = {k: full[k] for k in ("base_optimizer_state", "single_partition_of_fp32_groups")}
        return {"zero_partitions": context.gather_objects(mine)}

    def load_state_dict(self, state: dict) -> None:
        parts = state.get("zero_partitions")
        if parts is None or len(parts) != context.world_size():
            found = "no ZeRO partitions" if parts is None else f"{len(parts)} ZeRO partitions"
            raise UserError(f"checkpoint: holds {found}; this run has {context.world_size()} ranks "
                            "(resume a deepspeed run with the same --nproc and dist.strategy)")
        current = self.ds_optimizer.state_dict()
        current.update(parts[context.rank()])
        self.ds_optimizer.load_state_dict([current] * context.world_size(), load_optimizer_states=True,
                                          load_from_fp32_weights=True)
