"""Where a model lives and in what precision: device and dtype names, placement, seeded init."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from reasoner.errors import UserError

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; asking for a missing GPU is a user error."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"model.device '{name}': not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"model.device '{name}': no CUDA GPU is available (use model.device=cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"model.device '{name}': only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def resolve_dtype(name: str | torch.dtype = "auto", device: str | torch.device = "cpu") -> torch.dtype:
    """"auto" -> bfloat16 on a CUDA GPU that supports it, float32 otherwise (CPU kernels and
    training stability are best in fp32 there)."""
    if isinstance(name, torch.dtype):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        device = resolve_device(device)
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    if name not in _DTYPES:
        raise UserError(f"model.dtype '{name}': unknown (use auto, float32, bfloat16 or float16)")
    return _DTYPES[name]


def dtype_kw() -> str:
    """The from_pretrained / from_config keyword for the dtype (transformers 5 renamed it)."""
    import transformers

    return "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"


def place(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Move to device/dtype, keeping non-persistent float buffers (RoPE inv_freq) in their own
    precision as from_pretrained does."""
    keep = {n: b for n, b in model.named_buffers() if b.is_floating_point() and b.dtype != dtype}
    model.to(device=device, dtype=dtype)
    for name, buf in keep.items():
        set_buffer(model, name, buf.to(device))
    return model


def set_buffer(root: nn.Module, dotted: str, tensor: torch.Tensor) -> None:
    """Replace the buffer at a dotted name, keeping whether it is persistent."""
    mod_name, _, attr = dotted.rpartition(".")
    module = root.get_submodule(mod_name) if mod_name else root
    module.register_buffer(attr, tensor, persistent=attr not in module._non_persistent_buffers_set)


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (cpu for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed the RNG for one initialisation without disturbing the caller's RNG stream."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
