"""bitsandbytes 4/8-bit loading (CUDA only)."""

from __future__ import annotations

import importlib.util
import tempfile
from typing import TYPE_CHECKING

import torch

from reasoner.errors import UserError
from reasoner.models import provenance
from reasoner.models.device import dtype_kw

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def bnb_config(quantization: str | None, device: torch.device, dtype: torch.dtype):
    """bitsandbytes 4/8-bit config, or None. Only on CUDA with bitsandbytes installed."""
    if not quantization:
        return None
    if quantization not in ("4bit", "8bit"):
        raise UserError(f"model.quantization '{quantization}': unknown (use null, 4bit or 8bit)")
    if device.type != "cuda" or importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"quantization={quantization} needs a CUDA GPU and bitsandbytes (pip install bitsandbytes), or set model.quantization=null")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )


def reload_quantized(model, bnb, device, dtype) -> "PreTrainedModel":
    """Presets, GGUF and merged adapters are built in memory; bitsandbytes quantises while
    loading, so go through a temporary HF checkpoint."""
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory(prefix="reasoner-quant-") as tmp:
        model.save_pretrained(tmp)
        quantized = AutoModelForCausalLM.from_pretrained(
            tmp, quantization_config=bnb, device_map={"": device}, **{dtype_kw(): dtype}
        )
    return provenance.carry(model, quantized)
