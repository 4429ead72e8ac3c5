"""How big a model is: parameter counts and per-head attention size (for KV-cache budgets)."""

from __future__ import annotations

from torch import nn


def attention_head_size(conf: dict) -> int | None:
    """Per-head size from a model's config (dict form; a multimodal config's text part): its
    `head_dim`, else hidden_size / num_attention_heads; None when it says neither."""
    conf = conf.get("text_config") or conf
    if conf.get("head_dim"):
        return int(conf["head_dim"])
    if conf.get("hidden_size") and conf.get("num_attention_heads"):
        return int(conf["hidden_size"]) // int(conf["num_attention_heads"])
    return None


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameter count (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
