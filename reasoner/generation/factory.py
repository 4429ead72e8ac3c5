"""Choose the generation backend by name; the only place stages learn which backends exist.

Stages call `build_generator(cfg.generation, model, tokenizer, model_dir=local_model_dir(cfg.model))`.
The HF backend decodes with the in-memory model. The vLLM backend needs the weights in a local
Hugging Face directory: `model_dir` when the loaded model is exactly what that directory holds,
otherwise the in-memory model (preset, GGUF, LoRA merged, or trained in this process) is
exported with `models.save_model` to a temporary directory that lives as long as the generator.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

from reasoner.errors import UserError

BACKENDS = ("hf", "vllm")


def build_generator(gen_cfg, model, tokenizer, model_dir: str | os.PathLike | None = None,
                    vllm_defaults: dict | None = None):
    """A Generator for an already loaded policy.

    `model_dir` (vLLM only): a local HF directory holding the same weights as `model`, used as
    is instead of exporting `model`. `vllm_defaults`: VLLMGenerator options used unless
    generation.vllm sets them (the launcher's engine runs in its own process).
    """
    if gen_cfg.backend == "hf":
        from reasoner.generation.hf import HFGenerator

        return HFGenerator(model, tokenizer, batch_size=gen_cfg.batch_size, **_hf_options(gen_cfg))
    if gen_cfg.backend == "vllm":
        return _build_vllm(gen_cfg, model, tokenizer, model_dir, vllm_defaults or {})
    raise UserError(f"config: generation.backend must be one of {', '.join(BACKENDS)}, got '{gen_cfg.backend}'")


def local_model_dir(model_cfg) -> str | None:
    """`model_cfg.name_or_path` when vLLM can load it as is: a local HF model directory (not a
    PEFT adapter, GGUF or value model) with no LoRA or quantisation applied on top. Else None."""
    if model_cfg.lora.enabled or model_cfg.quantization:
        return None
    path = Path(os.path.expanduser(str(model_cfg.name_or_path)))
    if not (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
        return None
    if any(path.glob("*.gguf")) or (path / "value_head.safetensors").is_file():
        return None
    return str(path)


def export_model(model, tokenizer, parent: str | None = None) -> Path:
    """Save `model` (LoRA merged) + tokenizer to a fresh temporary HF directory; returns it.
    The caller removes it (`build_generator` ties that to the generator's lifetime)."""
    from reasoner.models import save_model

    root = Path(tempfile.mkdtemp(prefix="reasoner-vllm-", dir=parent))
    try:
        save_model(model, tokenizer, root / "model", merge_lora=True)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _build_vllm(gen_cfg, model, tokenizer, model_dir, defaults):
    from reasoner.generation.vllm import VLLMGenerator, import_vllm

    import_vllm()  # fail with the install hint before spending time on an export
    options = {**defaults, **dict(getattr(gen_cfg, "vllm", None) or {})}
    options.setdefault("dtype", _dtype_name(model))
    options.setdefault("seed", gen_cfg.seed)
    if model_dir is not None:
        return VLLMGenerator(model_dir, tokenizer, **options)
    root = export_model(model, tokenizer)
    try:
        gen = VLLMGenerator(root / "model", tokenizer, **options)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    weakref.finalize(gen, shutil.rmtree, root, True)
    return gen


def _hf_options(gen_cfg) -> dict:
    """HFGenerator knobs that the generation config may carry."""
    keys = ("prefix_cache", "prefix_cache_tokens", "prefix_cache_mb")
    return {k: getattr(gen_cfg, k) for k in keys if hasattr(gen_cfg, k)}


def _dtype_name(model) -> str:
    """vLLM's name for the model's parameter dtype ("auto" when it cannot tell)."""
    import torch

    dtype = getattr(model, "dtype", None)
    names = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
    return names.get(dtype, "auto")
