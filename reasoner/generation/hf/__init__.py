"""Generation with a plain transformers model and our own decoding loop.

Why not `model.generate`: we need exact per-token logprobs of the raw logits (for RL), vLLM
stop-string semantics, prefix sharing for n > 1, and finished rows leaving the batch. The loop
is: expand each prompt n times, left-pad, prefill once per distinct prompt, replicate the cache
rows, then decode one token per step against the KV cache. With `prefix_cache=True` the K/V of
finished sequences are kept across calls (`prefix_cache.PrefixStore`), and a prompt that starts
with a remembered sequence only prefills its new tail (search extends its prompts step by step).

    engine    HFGenerator: plan, chunks, prefill / decode loop, completions
    chunks    distinct prompts, chunks of <= batch_size sequences, per-sequence state
    sampling  greedy / temperature / top-p sampling with the raw logprob
    stops     stop-string detection while decoding, fast batched decode to text
    kv_cache  the chunk's KV cache (preallocated layers) and prefix-store K/V in and out
"""

from reasoner.generation.hf.engine import HFGenerator
from reasoner.generation.hf.kv_cache import PreallocatedLayer, new_cache, plain_layers, tokens_in
from reasoner.generation.hf.sampling import inverse_cdf, sample, sample_top_p
from reasoner.generation.hf.stops import StopChecker, decode_batch

# The names these had when hf was one module (kept for callers that still use them).
_PreallocatedLayer = PreallocatedLayer
_StopChecker = StopChecker
_inverse_cdf = inverse_cdf
_new_cache = new_cache
_plain_layers = plain_layers
_sample = sample
_sample_top_p = sample_top_p
_tokens_in = tokens_in

__all__ = [
    "HFGenerator", "PreallocatedLayer", "StopChecker", "decode_batch", "inverse_cdf", "new_cache", "plain_layers",
    "sample", "sample_top_p", "tokens_in",
]
