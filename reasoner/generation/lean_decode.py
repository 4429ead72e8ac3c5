"""One decode step (a single new token per row) of a Llama-style decoder without the HF wrapper.

For small models on CPU a decode step is mostly framework overhead, not arithmetic: the HF
forward rebuilds the attention mask, walks module hooks, output dataclasses and kwargs
plumbing for every token. This does the same maths on the same KV cache with the module
lookups done once per generate call, q/k/v and gate/up of small layers as one matmul each,
and q_len-1 attention as two small matmuls: generation of tiny-arith (hidden 128, 4 layers,
32 rows x 48 tokens) takes ~0.12 instead of ~0.18 CPU s. Big linears keep their own forwards
(cpu_linear's packed kernels). `step_fn(model)` returns None for anything it does not exactly
reproduce; the HF forward is then used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from reasoner.train.precision import FP32_SDPA

_SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM")
FUSE_MAX_ELEMENTS = 1 << 17  # q/k/v and gate/up weights up to this size run as one matmul each


class _Layer(NamedTuple):
    """One decoder layer's weights and linear forwards, looked up once per generate call
    (nn.Module attribute lookups and __call__ cost more than the tiny ops themselves)."""

    in_norm: tuple[torch.Tensor, float]
    q: Callable
    k: Callable
    v: Callable
    o: Callable
    head_dim: int
    scaling: float
    post_norm: tuple[torch.Tensor, float]
    gate: Callable
    up: Callable
    down: Callable
    qkv: Callable | None  # q, k, v in one matmul (small layers), else None
    q_heads: int
    gate_up: Callable | None


def step_fn(model):
    """A callable (tokens [B], positions [B], attention mask [B, L], cache) -> logits [B, V],
    or None when the model is not a plain Llama/Qwen2 decoder this module reproduces.
    Build it inside any context that patches linear forwards (cpu_linear): it keeps them."""
    if not _supported(model):
        return None
    inner = model.model
    embed, rotary, head = inner.embed_tokens.forward, inner.rotary_emb, model.lm_head.forward
    layers = [_resolve(layer) for layer in inner.layers]
    final_norm = (inner.norm.weight, inner.norm.variance_epsilon)

    def step(tok: torch.Tensor, pos: torch.Tensor, attn: torch.Tensor, cache) -> torch.Tensor:
        h = embed(tok[:, None])
        cos, sin = rotary(h, pos[:, None])
        cos, sin = cos[:, None], _signed_sin(sin[:, None])  # [B, 1, 1, D]: broadcast over heads
        bias = torch.zeros(attn.shape, dtype=h.dtype, device=h.device).masked_fill_(attn == 0, float("-inf"))
        bias = bias[:, None, None, :]
        for lay, layer_cache in zip(layers, cache.layers):
            h = h + _attention(lay, _rms(h, lay.in_norm), cos, sin, bias, layer_cache)
            x = _rms(h, lay.post_norm)
            if lay.gate_up is not None:
                gate, up = lay.gate_up(x).chunk(2, dim=-1)
            else:
                gate, up = lay.gate(x), lay.up(x)
            h = h + lay.down(F.silu(gate) * up)
        return head(_rms(h, final_norm))[:, -1]

    return step


def _resolve(layer) -> _Layer:
    a, m = layer.self_attn, layer.mlp
    norm_in, norm_post = layer.input_layernorm, layer.post_attention_layernorm
    return _Layer((norm_in.weight, norm_in.variance_epsilon), a.q_proj.forward, a.k_proj.forward, a.v_proj.forward,
                  a.o_proj.forward, a.head_dim, a.scaling, (norm_post.weight, norm_post.variance_epsilon),
                  m.gate_proj.forward, m.up_proj.forward, m.down_proj.forward,
                  _fused([a.q_proj, a.k_proj, a.v_proj]), a.q_proj.out_features // a.head_dim,
                  _fused([m.gate_proj, m.up_proj]))


def _fused(linears: list[nn.Module]) -> Callable | None:
    """One linear over the same input whose output is the given ones' concatenated: fewer,
    larger matmuls. Only for small plain nn.Linear: the weights are copied once per generate
    call (big ones would cost memory, and may run on cpu_linear's packed kernels instead)."""
    for m in linears:
        if type(m) is not nn.Linear or "forward" in m.__dict__ or m.weight.numel() > FUSE_MAX_ELEMENTS:
            return None
    if len({m.bias is None for m in linears}) != 1:
        return None
    weight = torch.cat([m.weight.detach() for m in linears])
    bias = None if linears[0].bias is None else torch.cat([m.bias.detach() for m in linears])
    return lambda x: F.linear(x, weight, bias)


def _attention(lay: _Layer, x, cos, sin, bias, layer_cache) -> torch.Tensor:
    """Attention for one new token per row as two small matmuls (cheaper than sdpa's kernel at
    q_len 1 on CPU); the query heads of a KV group ride in the query-length slot (no repeat_kv)."""
    b, d = x.shape[0], lay.head_dim
    if lay.qkv is not None:
        qkv = lay.qkv(x).view(b, -1, 1, d)
        kv_heads = (qkv.shape[1] - lay.q_heads) // 2
        qk = _rope(qkv[:, : lay.q_heads + kv_heads], cos, sin)  # one rotation for q and k
        q, k, v = qk[:, : lay.q_heads], qk[:, lay.q_heads :], qkv[:, lay.q_heads + kv_heads :]
    else:
        q = _rope(lay.q(x).view(b, -1, 1, d), cos, sin)
        k = _rope(lay.k(x).view(b, -1, 1, d), cos, sin)
        v = lay.v(x).view(b, -1, 1, d)
    keys, values = layer_cache.update(k, v)
    scores = torch.matmul(q.view(b, k.shape[1], -1, d), keys.transpose(-1, -2)).mul_(lay.scaling).add_(bias)
    out = torch.matmul(scores.softmax(dim=-1), values)
    return lay.o(out.reshape(b, 1, -1))


def _rms(x: torch.Tensor, norm: tuple[torch.Tensor, float]) -> torch.Tensor:
    """LlamaRMSNorm / Qwen2RMSNorm: normalise in float32, scale in the input dtype."""
    weight, eps = norm
    if x.dtype == torch.float32:  # the same maths in one kernel
        return F.rms_norm(x, weight.shape, weight, eps)
    xf = x.float()
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """HF's x * cos + rotate_half(x) * sin, with rotate_half's sign moved into `signed_sin`."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)


def _signed_sin(sin: torch.Tensor) -> torch.Tensor:
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


_ATTENTION = ("sdpa", "eager", FP32_SDPA)  # the last: train.precision's sdpa (plain sdpa outside autocast)


def _supported(model) -> bool:
    """Exactly the architecture above: no sliding windows, SiLU MLP, RMSNorm, sdpa/eager attention
    (no dropout at eval), no hooks that the module forwards would have run."""
    if type(model).__name__ not in _SUPPORTED:
        return False
    cfg = model.config
    if cfg.hidden_act != "silu" or getattr(cfg, "_attn_implementation", None) not in _ATTENTION:
        return False
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return False
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "rotary_emb") or type(inner.norm).__name__ not in ("LlamaRMSNorm", "Qwen2RMSNorm"):
        return False
    for layer in inner.layers:
        a = layer.self_attn
        if getattr(a, "sliding_window", None) is not None or not hasattr(a, "scaling"):
            return False
        if type(layer.input_layernorm) is not type(inner.norm) or type(layer.post_attention_layernorm) is not type(inner.norm):
            return False
    # accelerate's device hooks wrap forwards that this skips
    return not any(m._forward_hooks or m._forward_pre_hooks or hasattr(m, "_hf_hook") for m in model.modules())
