"""The precision of the training forward/backward passes (`optim.precision`).

`fp32`: everything in float32 (the default: every result in docs/ was measured so).
`bf16`: torch.autocast to bfloat16 around each training step; the weights, gradients and
optimiser state stay float32 (mixed precision, as HF Trainer's bf16=True). On a CPU with bf16
matrix units (AMX) the matrix multiplies run ~3-5x faster (docs/benchmarks.md).

One CPU exception, measured: torch's CPU flash-attention backward is ~7x slower in bf16 than in
fp32 and cancels the gain, so on CPU the attention itself runs in fp32 inside the autocast
region (`FP32_SDPA`, an `AttentionInterface` entry that is plain sdpa when autocast is off, so
generation and evaluation, which run outside the region, are unchanged). Rollout generation
opts out of autocast (`generation.hf`): at decode's small batches bf16 is slower here.
"""

from __future__ import annotations

import contextlib

import torch

from reasoner.errors import UserError

PRECISIONS = ("fp32", "bf16")
FP32_SDPA = "reasoner_sdpa_fp32_on_cpu"  # the models' attention implementation under bf16 on CPU


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise UserError(f"config: optim.precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")


def _fp32_sdpa_on_cpu(module, query, key, value, attention_mask, **kwargs):
    """HF's sdpa attention, in fp32 when CPU autocast is on (q/k/v arrive in mixed dtypes:
    RoPE promotes q and k to fp32, v is bf16); the output goes back in the autocast dtype."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
    return out.to(torch.get_autocast_dtype("cpu")), weights


def _register() -> None:
    """The attention function, and sdpa's mask builder under the same name (transformers builds
    no mask at all for an attention name its mask registry lacks)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(FP32_SDPA, _fp32_sdpa_on_cpu)
    AttentionMaskInterface.register(FP32_SDPA, sdpa_mask)


class Precision:
    """The training steps' autocast region, and the CPU attention switch of the run's models."""

    def __init__(self, precision: str = "fp32", models=()):
        check_precision(precision)
        self.precision = precision
        self.device_type = "cpu"
        for model in models:
            self.device_type = _device_type(model)
            if precision == "bf16" and self.device_type == "cpu":
                use_fp32_attention(model)

    def region(self):
        """The context one training step runs in."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16)


def use_fp32_attention(model) -> None:
    """Route `model`'s sdpa attention through FP32_SDPA (no-op for other implementations)."""
    config = getattr(model, "config", None) or getattr(getattr(model, "backbone", None), "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return
    _register()
    config._attn_implementation = FP32_SDPA


def _device_type(model) -> str:
    try:
        return next(model.parameters()).device.type
    except (StopIteration, AttributeError, TypeError):
        return "cpu"
