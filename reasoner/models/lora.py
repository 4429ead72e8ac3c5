"""LoRA adapters (PEFT): applying them, telling PEFT models apart, plain copies without them."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from torch import nn

from reasoner.errors import UserError
from reasoner.models import provenance
from reasoner.models.device import device_of, seeded

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _linear_names(model: nn.Module) -> set[str]:
    """Last name components of the linear layers (bitsandbytes layers subclass nn.Linear)."""
    return {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, nn.Linear)}


def apply_lora(model, lora, seed: int = 0, task_type: str = "CAUSAL_LM"):
    """Wrap `model` in a PEFT LoRA model. target_modules missing from the model are skipped;
    ["all-linear"] targets every linear layer but the output head. Init is seeded."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    wanted = list(lora.target_modules)
    if wanted == ["all-linear"]:
        targets: str | list[str] = "all-linear"
    else:
        present = _linear_names(model)
        targets = [t for t in wanted if t in present]
        if not targets:
            raise UserError(
                f"model.lora.target_modules {wanted}: none is a linear layer of this model "
                f"(it has: {', '.join(sorted(present))})"
            )
    if getattr(model, "is_quantized", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
        bias="none", task_type=task_type,
    )
    with seeded(seed, device_of(model)):
        return get_peft_model(model, config)


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def plain_copy(model, merge: bool) -> "PreTrainedModel":
    """A plain transformers model from a PEFT one, leaving the original untouched:
    adapters merged into the weights (merge=True) or dropped (the base)."""
    dup = copy.deepcopy(model)
    plain = dup.merge_and_unload() if merge else dup.unload()
    return provenance.carry(model, plain)
