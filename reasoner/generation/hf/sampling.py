"""Next-token sampling: greedy, temperature, nucleus (top-p), with the raw (T = 1) logprob."""

from __future__ import annotations

import torch

from reasoner.generation.base import SamplingParams


def sample(logits: torch.Tensor, params: SamplingParams, rng, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next token per row and its logprob under the raw (temperature 1) distribution; `u` (one
    uniform per row, float64) replaces the draws from `rng` (per-prompt seeds)."""
    logits = logits.float()
    if params.temperature == 0:
        tok = logits.argmax(dim=-1)
    elif params.top_p < 1.0:
        tok = sample_top_p(logits / params.temperature, params.top_p, rng, u)
    else:
        probs = torch.softmax(logits / params.temperature, dim=-1)
        tok = inverse_cdf(probs, rng, u)
    lp = logits.gather(1, tok[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
    return tok, lp


def inverse_cdf(weights: torch.Tensor, rng, u: torch.Tensor | None = None) -> torch.Tensor:
    """Draw one index per row proportionally to `weights` (>= 0, need not sum to 1).

    torch.multinomial costs ~1 ms per 49k-vocab row on CPU; a cumsum + searchsorted is ~20x
    cheaper. float64 keeps the cumulative sum exact enough over large vocabularies; u > 0 so
    zero-weight entries are never picked.
    """
    cum = weights.double().cumsum(dim=-1)
    if u is None:
        u = torch.rand(weights.shape[0], 1, generator=rng, device=weights.device, dtype=torch.float64)
    else:
        u = u.reshape(-1, 1).to(device=weights.device, dtype=torch.float64)
    u = u.clamp(min=1e-12) * cum[:, -1:]
    idx = torch.searchsorted(cum, u).squeeze(1)
    return idx.clamp_(max=weights.shape[-1] - 1)


def sample_top_p(scaled: torch.Tensor, top_p: float, rng, u: torch.Tensor | None = None) -> torch.Tensor:
    """Nucleus sampling (vLLM rule: keep a token iff the mass strictly above it is < top_p).

    A full sort of the vocabulary costs about as much as a forward pass of a small model on
    CPU, so look at the top-k first and widen k only while its mass is still below top_p.
    """
    vocab = scaled.shape[-1]
    norm = torch.logsumexp(scaled, dim=-1, keepdim=True)
    k = min(vocab, 256)
    while True:
        vals, idx = torch.topk(scaled, k, dim=-1)  # sorted, descending
        probs = (vals - norm).exp()
        cum = probs.cumsum(dim=-1)
        if k == vocab or bool((cum[:, -1] >= top_p).all()):
            break
        k = min(vocab, k * 4)
    probs = probs.masked_fill(cum - probs >= top_p, 0.0)
    return idx.gather(1, inverse_cdf(probs, rng, u)[:, None]).squeeze(1)
