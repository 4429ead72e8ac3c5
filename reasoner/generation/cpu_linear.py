"""oneDNN-packed weights for `nn.Linear` on CPU while the HF backend generates.

torch's CPU `F.linear` in float32 goes to MKL's sgemm, which on the AMD EPYC machines we run
on is 1.5-2x slower at decode shapes (a few dozen rows) than oneDNN with the weight reordered
once into its blocked layout (what inductor's freezing pass does, without compiling anything).
`PackedLinears.activate(model)` swaps each plain CPU float32/bfloat16 `nn.Linear`'s forward for
the packed kernel for the duration of a block and restores it afterwards. Measured on that CPU
(`mkl / onednn` time): 1.2-4.6x for SmolLM2-sized weights at 4-512 rows, but 10-100x slower at
a single row and no gain for tiny-arith-sized weights, hence `MIN_ROWS` and
`MIN_WEIGHT_ELEMENTS`. Packed copies are cached
per module and rebuilt only when the weight changed (in-place updates bump its version), so RL
loops that train between generate calls stay correct. Cost: one extra copy of those weights.
"""

from __future__ import annotations

import contextlib
import weakref

import torch
from torch import nn

_SUPPORTED = (torch.float32, torch.bfloat16)
MIN_WEIGHT_ELEMENTS = 1 << 17  # smaller layers (tiny-arith: 128 x 384) stay on F.linear
MIN_ROWS = 4  # a call with fewer input rows (batch-1 decoding) stays on F.linear
_WORKS: bool | None = None  # result of the one-time self-check


def available() -> bool:
    """oneDNN's packed linear exists in this torch build and matches F.linear."""
    global _WORKS
    if _WORKS is None:
        _WORKS = _self_check()
    return _WORKS


class PackedLinears:
    """Cache of packed weights for one model; `activate()` is the context manager."""

    def __init__(self, batch_hint: int = 32):
        self.batch_hint = max(1, int(batch_hint))
        self._packed: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, torch.Tensor]] = weakref.WeakKeyDictionary()

    @contextlib.contextmanager
    def activate(self, model: nn.Module):
        patched = []
        try:
            if available():
                for module in model.modules():
                    forward = self._forward_for(module) if _eligible(module) else None
                    if forward is not None:
                        module.forward = forward
                        patched.append(module)
            yield len(patched)
        finally:
            for module in patched:
                module.__dict__.pop("forward", None)

    def clear(self) -> None:
        self._packed.clear()

    def _forward_for(self, module: nn.Linear):
        weight = module.weight
        try:
            key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))
        except RuntimeError:  # an inference tensor: no version counter, so repack every time
            key = None
        hit = self._packed.get(module)
        if hit is None or key is None or hit[0] != key:
            try:
                hit = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), self.batch_hint))
            except RuntimeError:  # e.g. bfloat16 on a CPU without bf16 support: keep F.linear
                return None
            self._packed[module] = hit
        packed, bias, width = hit[1], module.bias, module.in_features

        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.dtype != packed.dtype or torch.is_grad_enabled() or x.numel() < MIN_ROWS * width:
                return nn.functional.linear(x, module.weight, module.bias)
            return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")

        return forward


def _eligible(module: nn.Module) -> bool:
    """Exactly nn.Linear (not quantised or otherwise specialised subclasses), on CPU, in a
    dtype oneDNN handles, with no forward hooks or patches of its own."""
    if type(module) is not nn.Linear or "forward" in module.__dict__:
        return False
    w = module.weight
    return (
        w.device.type == "cpu" and w.dtype in _SUPPORTED and w.dim() == 2 and w.layout == torch.strided
        and w.numel() >= MIN_WEIGHT_ELEMENTS
    )


def _self_check() -> bool:
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        w, b = torch.randn(24, 16, generator=gen), torch.randn(24, generator=gen)
        x = torch.randn(3, 2, 16, generator=gen)
        with torch.inference_mode():
            packed = torch.ops.mkldnn._reorder_linear_weight(w, 3)
            out = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
        return bool(torch.allclose(out, nn.functional.linear(x, w, b), atol=1e-4))
    except (RuntimeError, TypeError, AttributeError):
        return False
