"""`save_model`: every checkpoint reasoner writes (policies, adapters, value models, PRMs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from reasoner.models import provenance
from reasoner.utils.io import atomic_dir
from reasoner.models.gguf import strip_gguf
from reasoner.models.lora import is_peft, plain_copy
from reasoner.models.sources import BASE_SUBDIR
from reasoner.models.tokenizer import save_tokenizer
from reasoner.models.value import ValueModel


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
    model = unwrap(model)
    if isinstance(model, ValueModel):
        return model.save(out_dir, tokenizer)
    final = Path(out_dir).expanduser().resolve()
    with atomic_dir(final) as tmp:
        if is_peft(model) and merge_lora:
            plain_copy(model, merge=True).save_pretrained(tmp)
        elif is_peft(model):
            _save_adapter(model, tmp, final)
        else:
            strip_gguf(model).save_pretrained(tmp)
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)
    return Path(out_dir)


def unwrap(model: nn.Module) -> nn.Module:
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
    base_ref = provenance.base_ref(model)
    if base_ref is None:
        plain_copy(model, merge=False).save_pretrained(tmp / BASE_SUBDIR)
        base_ref = str(final / BASE_SUBDIR)
    conf_path = tmp / "adapter_config.json"
    conf = json.loads(conf_path.read_text())
    conf["base_model_name_or_path"] = base_ref
    conf_path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
