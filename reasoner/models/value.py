"""Value models: a transformer body with a scalar head (critics, OREO's value, PRM scalar heads)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from torch import nn

from reasoner.utils.io import atomic_dir
from reasoner.models.device import device_of, dtype_kw, place, resolve_device, resolve_dtype
from reasoner.models.gguf import gguf_parse_once, strip_gguf
from reasoner.models.loading import load_plain
from reasoner.models.lora import apply_lora, is_peft, plain_copy
from reasoner.models.sources import VALUE_HEAD_FILE, resolve_source
from reasoner.models.tokenizer import save_tokenizer


class ValueModel(nn.Module):
    """Transformer body (no LM head) + a zero-initialised linear head: values [B, T] in fp32.

    Zero init makes every value start at 0, so early critic updates do not push random
    advantages into the policy. Values at padded positions are meaningless: mask them.
    """

    def __init__(self, backbone: nn.Module, hidden_size: int | None = None):
        super().__init__()
        self.backbone = backbone
        hidden = hidden_size or _config_of(backbone).hidden_size
        self.head = nn.Linear(hidden, 1, device=device_of(backbone), dtype=torch.float32)
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

        backbone = plain_copy(self.backbone, merge=True) if is_peft(self.backbone) else self.backbone
        with atomic_dir(Path(out_dir).expanduser().resolve()) as tmp:
            strip_gguf(backbone).save_pretrained(tmp)
            head = {k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(head, str(tmp / VALUE_HEAD_FILE))
            if tokenizer is not None:
                save_tokenizer(tokenizer, tmp)
        return Path(out_dir)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
             trust_remote_code: bool = False) -> "ValueModel":
        """Inverse of `save`: backbone via AutoModel, head from value_head.safetensors."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        backbone = AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code, **{dtype_kw(): dtype})
        model = cls(place(backbone, device, dtype))
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
            with gguf_parse_once(src):
                lm = load_plain(cfg, src)
        elif is_peft(policy):
            lm = plain_copy(policy, merge=True)
        else:
            lm = copy.deepcopy(policy)
        value = ValueModel(lm.base_model)  # the decoder body: no LM-head matmul over the vocab
    for param in value.backbone.parameters():  # a copy of a frozen/PEFT policy may come frozen
        param.requires_grad_(param.is_floating_point())
    if cfg.lora.enabled:
        value.backbone = apply_lora(value.backbone, cfg.lora, seed=cfg.seed, task_type="FEATURE_EXTRACTION")
    return value.eval()
