"""DeepSpeed ZeRO 1/2/3 as a strategy: optimiser state (1), gradients (2) and weights (3) partitioned over ranks.

The recipe's own AdamW is handed to DeepSpeed as its client optimiser, so learning rates and the
schedule stay the recipe's. Micro-batches accumulate with the accumulation boundary held off;
at the step the boundary is set and a zero-valued backward through every parameter makes
DeepSpeed reduce what accumulated (the recipe never says which micro-batch is its last). The
gradient norm is known only after DeepSpeed's step, so a non-finite one is caught by the guard's
after-step check (the run stops; nothing is saved). A checkpoint holds every rank's partition
(gathered to rank 0, which writes it); it resumes at the same world size only.

ZeRO-3 is given the model itself: DeepSpeed partitions its weights and gathers each layer
through hooks on its modules during a forward, so every rank must run the same forwards.
What reads whole weights outside a training forward (generation, the eval hook, checkpoints,
the final save, vLLM's weight sync) runs inside `full_weights`, which every rank enters: the
weights are gathered and the hooks taken off (generation decodes a different number of tokens
on each rank), then put back. The step guard measures the update on each rank's partition and
sums over the ranks (`update_views`, `sum_over_ranks`).
"""

from __future__ import annotations

import json
import os
import warnings
import weakref
from contextlib import ExitStack, contextmanager

import torch

from reasoner.dist import context
from reasoner.dist.strategy import SingleStrategy
from reasoner.errors import UserError

STAGES = (1, 2, 3)
_ZERO3: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its ZeRO-3 strategy


def check_settings(settings) -> None:
    """UserError (before anything loads) for a stage this strategy does not run, or no deepspeed."""
    if settings.zero_stage not in STAGES:
        raise UserError(f"config: dist.zero_stage={settings.zero_stage} is not a ZeRO stage (1, 2 or 3)")
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
            raise UserError(f"dist.deepspeed_config '{settings.deepspeed_config}': zero_optimization.stage must be 1, 2 or 3")
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
        # DeepSpeed 0.19 calls torch collectives that torch 2.13 marks deprecated, once per call site
        warnings.filterwarnings("ignore", message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)`",
                                category=FutureWarning)
        config = ds_config(self.settings)
        self.stage = int(config["zero_optimization"].get("stage", 0))
        if self.stage == 3 and model is None:
            raise ValueError("ZeRO-3 partitions a model's weights: wrap needs the model, not bare parameters")
        # ZeRO-1/2 get a holder of the optimiser's parameters: DeepSpeed then touches nothing of the model
        module = model if self.stage == 3 else _Holder(self.params)
        self.engine, self.ds_optimizer, _, _ = deepspeed.initialize(
            model=module, optimizer=optimizer, config=config, dist_init_required=False)
        if self.stage == 3:
            _ZERO3[model] = self
        self._accumulate()
        return self

    def _accumulate(self) -> None:
        self.engine.set_gradient_accumulation_boundary(False)

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)
        if self.stage == 3:  # what engine.forward (which the recipes do not call) does before the next
            self.ds_optimizer.clear_backward_seen_flag()  # micro-batch: count it, so its gradient accumulates

    def clip(self, max_norm: float | None) -> float | None:
        self.ds_optimizer.clip_grad = float(max_norm) if max_norm is not None else 0.0
        self.engine.set_gradient_accumulation_boundary(True)
        if self.stage < 3:  # ZeRO-1/2 reduce at the boundary's backward; ZeRO-3 reduced at every one
            self.engine.backward(torch.stack([(p * 0).sum() for p in self.params]).sum())
        return None

    def step(self) -> float | None:
        self.engine.step()
        self._accumulate()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def zero_grad(self) -> None:
        self.engine.zero_grad()

    def update_views(self) -> list[torch.Tensor]:
        """What the guard measures the update on: this rank's partition of each weight under ZeRO-3."""
        return [p.ds_tensor for p in self.params] if self.stage == 3 else super().update_views()

    def sum_over_ranks(self, value: float) -> float:
        return context.all_sum(value) if self.stage == 3 else value

    def state_dict(self) -> dict:
        """Every rank's optimiser partition (moments and fp32 master weights), in rank order."""
        full = self.ds_optimizer.state_dict()
        keys = ("optimizer_state_dict", "fp32_flat_groups") if self.stage == 3 else (
            "base_optimizer_state", "single_partition_of_fp32_groups")
        return {"zero_partitions": context.gather_objects({k: full[k] for k in keys})}

    def load_state_dict(self, state: dict) -> None:
        parts = state.get("zero_partitions")
        if parts is None or len(parts) != context.world_size():
            found = "no ZeRO partitions" if parts is None else f"{len(parts)} ZeRO partitions"
            raise UserError(f"checkpoint: holds {found}; this run has {context.world_size()} ranks "
                            "(resume a deepspeed run with the same --nproc and dist.strategy)")
        current = self.ds_optimizer.state_dict()
        if not set(parts[context.rank()]) <= set(current):
            raise UserError(f"checkpoint: its ZeRO partitions are not ZeRO-{self.stage}'s "
                            "(resume with the dist.zero_stage the run was started with)")
        current.update(parts[context.rank()])
        self.ds_optimizer.load_state_dict([current] * context.world_size(), load_optimizer_states=True,
                                          load_from_fp32_weights=True)

    # ------------------------------------------------------------ ZeRO-3's whole weights

    def _offload(self):
        """DeepSpeed's ZeRO-3 parameter manager: it owns the module hooks that gather and release."""
        return getattr(self.ds_optimizer, "parameter_offload", self.ds_optimizer)

    def remove_hooks(self) -> None:
        offload = self._offload()
        for p in offload.module.parameters():
            p.ds_active_sub_modules.clear()
        for hook in offload.forward_hooks + offload.backward_hooks:
            hook.remove()
        offload.forward_hooks, offload.backward_hooks = [], []

    def add_hooks(self) -> None:
        offload = self._offload()
        offload._register_deepspeed_module(offload.module)  # also invalidates the recorded fetch order


@contextmanager
def full_weights(models, modify: bool = False):
    """Inside, every ZeRO-3 model among `models` holds its whole weights on every rank and runs
    as a plain module (no gathering hooks); other models are untouched. Every rank must enter.
    modify=True: rank 0's values are what the partitions hold afterwards (a loaded checkpoint);
    otherwise changes made inside are dropped."""
    partitioned = [(m, _ZERO3[m]) for m in models if m in _ZERO3]
    if not partitioned:
        yield
        return
    import deepspeed

    with ExitStack() as stack:
        for model, strategy in partitioned:
            stack.enter_context(deepspeed.zero.GatheredParameters(list(model.parameters()),
                                                                   modifier_rank=0 if modify else None))
            strategy.remove_hooks()
            stack.callback(strategy.add_hooks)
        yield
