"""The one model-loading layer: every stage gets its policy, reference, value model and
tokenizer here, and saves checkpoints through `save_model`.

One module per job (all re-exported here, so callers import `from reasoner.models import X`):

    sources       resolve_source / Source: what name_or_path points at (preset, HF dir, adapter,
                  value model, .gguf, hub id), and the one-line errors when it is not there
    presets       PRESETS: tiny-arith (random init, character tokenizer), smollm2-135m (GGUF)
    gguf          GGUF dequantise + rebuild into plain transformers models
    quantization  bitsandbytes 4/8-bit loading (CUDA only)
    lora          apply_lora, is_peft, plain copies of PEFT models
    loading       load -> LoadedModel(model, tokenizer, source, base_ref); load_policy
    tokenizer     load_tokenizer (pad token guaranteed), save_tokenizer
    reference     ReferenceModel, load_reference
    value         ValueModel, load_value_model
    saving        save_model (HF format, adapters, value models; atomic)
    provenance    the base a PEFT adapter names, carried on the model (one attribute)
    device        resolve_device / resolve_dtype, placement, seeded init
    sizes         count_parameters, attention_head_size
    atomic        atomic checkpoint directories

Models come back on the resolved device and dtype, in eval mode (callers call `.train()`).
GGUF models are dequantised and rebuilt into plain transformers models at load time, so
training, copying and saving treat them like any other model.

Tokenizers always have a pad token (falling back to EOS). Their padding side is left as the
tokenizer ships it (right for the presets): batched generation must set
`tokenizer.padding_side = "left"` itself.
"""

from reasoner.models.device import resolve_device, resolve_dtype
from reasoner.models.gguf import strip_gguf
from reasoner.models.loading import LoadedModel, load, load_policy
from reasoner.models.lora import apply_lora, is_peft, plain_copy
from reasoner.models.presets import PRESETS, SMOLLM2_GGUF, Preset, describe_presets, smollm2_gguf_path, tiny_model_config
from reasoner.models.reference import ReferenceModel, load_reference
from reasoner.models.saving import save_model, unwrap
from reasoner.models.sizes import attention_head_size, count_parameters
from reasoner.models.sources import BASE_SUBDIR, VALUE_HEAD_FILE, Source, resolve_source
from reasoner.models.tokenizer import load_tokenizer, save_tokenizer
from reasoner.models.value import ValueModel, load_value_model

# The names these helpers had when models was one module (kept for callers that still use them).
_plain_copy = plain_copy
_save_tokenizer = save_tokenizer
_unwrap = unwrap

__all__ = [
    "BASE_SUBDIR", "PRESETS", "SMOLLM2_GGUF", "VALUE_HEAD_FILE", "LoadedModel", "Preset", "ReferenceModel",
    "Source", "ValueModel", "apply_lora", "attention_head_size", "count_parameters", "describe_presets",
    "is_peft", "load", "load_policy", "load_reference", "load_tokenizer", "load_value_model", "plain_copy",
    "resolve_device", "resolve_dtype", "resolve_source", "save_model", "save_tokenizer", "smollm2_gguf_path",
    "strip_gguf", "tiny_model_config", "unwrap",
]
