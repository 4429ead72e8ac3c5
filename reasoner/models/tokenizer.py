"""Tokenizers: loaded for any model source with a pad token guaranteed, and saved so that they
load back as the same tokenizer (here, in transformers 4.x and in vLLM).

Padding side is left as the tokenizer ships it (right for the presets): batched generation
must set `tokenizer.padding_side = "left"` itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from reasoner.errors import UserError
from reasoner.models.gguf import gguf_parse_once
from reasoner.models.presets import PRESETS
from reasoner.models.sources import Source, adapter_base, hub_errors, resolve_source

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# The tokenizer-class names that mean "tokenizer.json is the whole tokenizer" (transformers 5
# saves TokenizersBackend; `save_tokenizer` writes the 4.x-compatible PreTrainedTokenizerFast).
GENERIC_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def load_tokenizer(cfg) -> "PreTrainedTokenizerBase":
    """The tokenizer for cfg.name_or_path, with a pad token guaranteed."""
    src = resolve_source(cfg.name_or_path, cfg.gguf_file)
    with gguf_parse_once(src):
        return ensure_pad(load_source_tokenizer(cfg, src))


def load_source_tokenizer(cfg, src: Source):
    """The tokenizer of an already resolved source, as it ships (no pad fallback)."""
    from transformers import AutoTokenizer

    if src.kind == "preset":
        return PRESETS[src.ref].load_tokenizer(cfg)
    if src.kind in ("adapter", "value") and not (Path(src.ref) / "tokenizer_config.json").is_file():
        if src.kind == "value":
            raise UserError(f"model '{src.ref}': value model directory has no tokenizer files")
        return load_source_tokenizer(cfg, resolve_source(adapter_base(src.ref)))
    if src.kind in ("hf", "adapter", "value") and _saved_generic(Path(src.ref)):
        from transformers import PreTrainedTokenizerFast

        with hub_errors(src):
            return _with_saved_template(PreTrainedTokenizerFast.from_pretrained(src.ref), Path(src.ref))
    kwargs = {"gguf_file": src.gguf_file} if src.kind == "gguf" else {"trust_remote_code": bool(cfg.trust_remote_code)}
    with hub_errors(src):
        return AutoTokenizer.from_pretrained(src.ref, **kwargs)


def _with_saved_template(tokenizer, path: Path):
    """transformers 5 saves the chat template beside the tokenizer (chat_template.jinja), which
    PreTrainedTokenizerFast does not read back: without it a fine-tuned chat model would get raw
    prompts. Directories written by `save_tokenizer` carry it in tokenizer_config.json as well."""
    jinja = path / "chat_template.jinja"
    if not getattr(tokenizer, "chat_template", None) and jinja.is_file():
        tokenizer.chat_template = jinja.read_text(encoding="utf-8")
    return tokenizer


def _saved_generic(path: Path) -> bool:
    """Whether a local directory's tokenizer is a plain tokenizer.json one (e.g. tiny-arith's
    character vocabulary), to be loaded as exactly that. AutoTokenizer would not: for model types
    whose hub configs it distrusts (qwen2 among them) it rebuilds the model type's own tokenizer
    class from the vocabulary, whose byte-level pre-tokenizer loses every character outside a
    custom vocabulary (" ки" encoded to nothing)."""
    conf_path = path / "tokenizer_config.json"
    if not conf_path.is_file() or not (path / "tokenizer.json").is_file():
        return False
    try:
        conf = json.loads(conf_path.read_text())
    except (OSError, ValueError):
        return False  # AutoTokenizer reports the broken file
    return isinstance(conf, dict) and conf.get("tokenizer_class") in GENERIC_CLASSES and "auto_map" not in conf


def ensure_pad(tokenizer):
    """Every stage pads batches: fall back to EOS (then UNK) when the tokenizer has no pad token."""
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise UserError("tokenizer has no pad, eos or unk token to pad with; add a pad token to the tokenizer")
        tokenizer.pad_token = fallback
    return tokenizer


def save_tokenizer(tokenizer, out: Path) -> None:
    """save_pretrained, naming the class PreTrainedTokenizerFast instead of transformers 5's
    TokenizersBackend so transformers 4.x (and vLLM built on it) can load the files too."""
    tokenizer.save_pretrained(str(out))
    conf_path = out / "tokenizer_config.json"
    if conf_path.is_file():
        conf = json.loads(conf_path.read_text())
        changed = conf.get("tokenizer_class") == "TokenizersBackend"
        if changed:
            conf["tokenizer_class"] = "PreTrainedTokenizerFast"
        template = getattr(tokenizer, "chat_template", None)
        if isinstance(template, str) and template and not conf.get("chat_template"):
            conf["chat_template"] = template   # read back by every loader (and transformers 4.x)
            changed = True
        if changed:
            conf_path.write_text(json.dumps(conf, indent=2, ensure_ascii=False) + "\n")
