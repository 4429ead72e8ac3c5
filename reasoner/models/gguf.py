"""GGUF checkpoints: dequantised at load time and rebuilt into plain transformers models, so
training, copying and saving treat them like any other model."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import os
from typing import TYPE_CHECKING, Any

import torch

from reasoner.models.device import dtype_kw, set_buffer

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def from_pretrained_gguf(where: str, gguf_file: str, dtype) -> "PreTrainedModel":
    """Dequantise the GGUF fully (never keep packed GGUF layers: they cannot train or save)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"gguf_file": gguf_file, dtype_kw(): dtype}
    try:
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=gguf_file, dequantize=True)
    except ImportError:  # transformers 4.x always dequantises
        pass
    model = strip_gguf(AutoModelForCausalLM.from_pretrained(where, **kwargs))
    model.config.__dict__.pop("_model_name_or_path", None)  # GGUF general.name, not a path
    return model


@contextlib.contextmanager
def gguf_parse_once(src):
    """transformers 5 parses a GGUF file separately for the config, the weights and the
    tokenizer, and rebuilds gguf's tensor-name map once per module (~400 times). Memoise both
    while one load of `src` (a `sources.Source`) runs: SmolLM2 loads about 2x faster on CPU.
    The patched names are only looked up at call time by transformers, so a change there just
    loses the speed-up."""
    if not src.is_gguf or importlib.util.find_spec("gguf") is None:
        yield
        return
    import gguf

    if getattr(gguf.GGUFReader, "_reasoner_memo", False):  # nested load: already patched
        yield
        return
    real_reader, real_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def reader(path, mode="r"):
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = real_reader(path, mode)
        return readers[key]

    reader._reasoner_memo = True
    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(real_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_map


def _is_gguf(model) -> bool:
    quantizer = getattr(model, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    return str(getattr(method, "value", method)).lower() == "gguf"


def strip_gguf(model: "PreTrainedModel") -> "PreTrainedModel":
    """A GGUF model loaded without `dequantize=True` (transformers 5 default) keeps a gguf
    quantizer and config entry that make it refuse to save or train; rebuild the same class
    from a clean config and move the tensors over (no copy: meta-device construction +
    assign). Models that are not GGUF-quantised come back unchanged."""
    if not _is_gguf(model):
        return model
    conf = model.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "_pre_quantization_dtype"):
        conf.pop(key, None)
    config = type(model.config).from_dict(conf)
    with torch.device("meta"):
        fresh = type(model)(config)
    fresh.load_state_dict(model.state_dict(), strict=True, assign=True)
    buffers = dict(model.named_buffers())
    for name, buf in list(fresh.named_buffers()):
        if buf.is_meta:
            set_buffer(fresh, name, buffers[name])
    fresh.tie_weights()
    fresh.generation_config = copy.deepcopy(model.generation_config)
    left = [n for n, t in [*fresh.named_parameters(), *fresh.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"GGUF rebuild left tensors on the meta device: {left[:5]}")
    return fresh.eval()
