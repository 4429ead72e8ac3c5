"""The frozen reference policy for KL terms."""

from __future__ import annotations

import copy

import torch
from torch import nn

from reasoner.models.device import device_of
from reasoner.models.gguf import gguf_parse_once
from reasoner.models.loading import load_plain
from reasoner.models.lora import is_peft
from reasoner.models.sources import resolve_source


class ReferenceModel:
    """Frozen reference policy with one call shape: ref(input_ids, attention_mask) -> logits.

    Either its own frozen copy, or (for a PEFT policy) the policy itself run with its adapter
    disabled: no second copy of the weights. Not an nn.Module on purpose, so its parameters
    never end up in an optimiser or a checkpoint by accident.
    """

    def __init__(self, model: nn.Module, adapter_disabled: bool = False):
        self.model = model
        self.adapter_disabled = adapter_disabled

    @property
    def device(self) -> torch.device:
        return device_of(self.model)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.adapter_disabled:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        was_training = self.model.training
        self.model.eval()  # no dropout in the reference, even while the policy trains
        try:
            with self.model.disable_adapter():
                return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        finally:
            self.model.train(was_training)

    __call__ = forward


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients, in place; returns the model."""
    model.eval()
    model.requires_grad_(False)
    return model


def load_reference(cfg, policy=None) -> ReferenceModel:
    """The frozen reference for KL terms: the policy with its adapter off when it is a PEFT
    model, else a frozen deep copy of `policy`, else a fresh load of cfg (LoRA never applied)."""
    if policy is not None and is_peft(policy):
        return ReferenceModel(policy, adapter_disabled=True)
    if policy is not None and not getattr(policy, "is_quantized", False):
        return ReferenceModel(freeze(copy.deepcopy(policy)))
    src = resolve_source(cfg.name_or_path, cfg.gguf_file)
    with gguf_parse_once(src):
        return ReferenceModel(freeze(load_plain(cfg, src)))
