"""Loading a causal LM (plain, LoRA-wrapped, quantised) with its tokenizer from any source.

Models come back on the resolved device and dtype, in eval mode (callers call `.train()`).
An adapter directory is merged into its base at load time; GGUF files are dequantised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from reasoner.errors import UserError
from reasoner.models import provenance
from reasoner.models.device import dtype_kw, place, resolve_device, resolve_dtype
from reasoner.models.gguf import from_pretrained_gguf, gguf_parse_once
from reasoner.models.lora import apply_lora
from reasoner.models.presets import PRESETS
from reasoner.models.quantization import bnb_config, reload_quantized
from reasoner.models.sources import Source, adapter_base, hub_errors, resolve_source
from reasoner.models.tokenizer import ensure_pad, load_source_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class LoadedModel:
    """What `load` returns: the model, its tokenizer, where they came from, and the plain model
    a PEFT adapter trained on it should name as its base (None: `save_model` writes a copy of the
    base beside the adapter). `base_ref` is also what `save_model` reads from the model itself
    (`provenance`), so saving needs only the model."""

    model: "PreTrainedModel"
    tokenizer: "PreTrainedTokenizerBase"
    source: Source
    base_ref: str | None


def load(cfg) -> LoadedModel:
    """The policy for `cfg` (config.ModelConfig) on the configured device/dtype, LoRA applied
    when cfg.lora.enabled.

    An adapter directory is merged into its base first, so LoRA training on top of it starts
    a fresh adapter whose disabled state (the reference) is the loaded checkpoint.
    """
    src = resolve_source(cfg.name_or_path, cfg.gguf_file)
    if src.kind == "value":
        raise UserError(f"model '{cfg.name_or_path}': is a value-model checkpoint; use it where a value model is expected")
    with gguf_parse_once(src):
        tokenizer = ensure_pad(load_source_tokenizer(cfg, src))
        model = load_plain(cfg, src)
    _sync_special_tokens(model, tokenizer)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, seed=cfg.seed)
    return LoadedModel(model, tokenizer, src, provenance.base_ref(model))


def load_policy(cfg) -> tuple["PreTrainedModel", "PreTrainedTokenizerBase"]:
    """(model, tokenizer) of `load(cfg)`: the call shape the stages use."""
    loaded = load(cfg)
    return loaded.model, loaded.tokenizer


def load_plain(cfg, src: Source) -> "PreTrainedModel":
    """A plain (no LoRA) causal LM from `src`, placed and in eval mode; quantised when asked."""
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    bnb = bnb_config(cfg.quantization, device, dtype)
    if src.kind in ("hf", "hub"):
        model = provenance.mark(_from_pretrained(src, cfg, dtype, bnb, device), src.ref)
    else:
        model = _load_unplaced(cfg, src)
        model = reload_quantized(model, bnb, device, dtype) if bnb else place(model, device, dtype)
    return model.eval()


def _load_unplaced(cfg, src: Source) -> "PreTrainedModel":
    """Preset, GGUF or adapter source as a plain model on CPU (fp32), before placement."""
    if src.kind == "preset":  # random init / GGUF: nothing plain to point at
        return provenance.mark(PRESETS[src.ref].load_model(cfg), None)
    if src.kind == "gguf":
        with hub_errors(src):
            return provenance.mark(from_pretrained_gguf(src.ref, src.gguf_file, torch.float32), None)
    if src.kind == "adapter":
        return _load_merged_adapter(cfg, src.ref)
    raise ValueError(f"unexpected source kind {src.kind}")


def _load_merged_adapter(cfg, adapter_dir: str) -> "PreTrainedModel":
    """Base (its own `base/` copy, else adapter_config's base_model_name_or_path) + adapter, merged."""
    from peft import PeftModel

    base_src = resolve_source(adapter_base(adapter_dir))
    if base_src.kind in ("hf", "hub"):
        base = _from_pretrained(base_src, cfg, torch.float32, None, torch.device("cpu"))
    else:
        base = _load_unplaced(cfg, base_src)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    return provenance.mark(merged, adapter_dir)  # later adapters chain to this one


def _from_pretrained(src: Source, cfg, dtype, bnb, device) -> "PreTrainedModel":
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"trust_remote_code": bool(cfg.trust_remote_code), dtype_kw(): dtype}
    if bnb is not None:
        kwargs.update(quantization_config=bnb, device_map={"": device})
    with hub_errors(src):
        model = AutoModelForCausalLM.from_pretrained(src.ref, **kwargs)
    return model if bnb is not None else place(model, device, dtype)


def _sync_special_tokens(model, tokenizer) -> None:
    """Generation needs a pad id; take the tokenizer's so no stage has to warn about it."""
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
