"""HFGenerator's prefix cache: same results as without it, fewer prompt tokens prefilled."""

from __future__ import annotations

import pytest
import torch

from reasoner.generation import HFGenerator, SamplingParams
from reasoner.generation.prefix_cache import PrefixStore, common_prefix_len
from tests.generation.tiny import PROMPTS, extend


def _flat(result):
    return [c for r in result for c in r]


def _assert_same(a, b):
    for x, y in zip(_flat(a), _flat(b)):
        assert x.token_ids == y.token_ids
        assert x.text == y.text and x.finish_reason == y.finish_reason and x.stop_reason == y.stop_reason
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


def _search_rounds(gen, rounds=3, params=None):
    """Three rounds of a toy beam search: each prompt grows by its sampled step."""
    params = params or SamplingParams(n=2, temperature=0.9, max_new_tokens=6, stop=["\n"], seed=11)
    prompts, outs = list(PROMPTS), []
    for _ in range(rounds):
        out = gen.generate(prompts, params)
        outs.append(out)
        prompts = [extend(p, r[k % len(r)].text) for p, r in zip(prompts, out) for k in range(1)]
    return outs


@pytest.mark.parametrize("prealloc", [True, False])
def test_results_identical_with_and_without_prefix_cache(model, tokenizer, prealloc):
    plain = _search_rounds(HFGenerator(model, tokenizer, batch_size=4, preallocate_cache=prealloc))
    cached = _search_rounds(HFGenerator(model, tokenizer, batch_size=4, preallocate_cache=prealloc, prefix_cache=True))
    for a, b in zip(plain, cached):
        _assert_same(a, b)


def test_only_new_tails_are_prefilled(model, tokenizer):
    widths = []
    hook = model.register_forward_pre_hook(
        lambda mod, args, kwargs: widths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    gen = HFGenerator(model, tokenizer, batch_size=16, prefix_cache=True)
    params = SamplingParams(temperature=0.0, max_new_tokens=5)
    try:
        first = gen.generate(PROMPTS, params)
        widths.clear()
        again = gen.generate([extend(p, r[0].text) + "9" for p, r in zip(PROMPTS, first)], params)
    finally:
        hook.remove()
    new = [tokenizer(extend(p, r[0].text) + "9")["input_ids"] for p, r in zip(PROMPTS, first)]
    old = [tokenizer(p)["input_ids"] + r[0].token_ids[:-1] for p, r in zip(PROMPTS, first)]  # last token never fed
    tails = [len(n) - min(common_prefix_len(tuple(n), tuple(o)), len(n) - 1) for n, o in zip(new, old)]
    assert widths[0] == max(tails) < max(len(n) for n in new)
    fresh = HFGenerator(model, tokenizer, batch_size=16).generate(
        [extend(p, r[0].text) + "9" for p, r in zip(PROMPTS, first)], params)
    _assert_same(again, fresh)


def test_identical_prompt_in_later_chunk_reuses_earlier_chunk(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=2, prefix_cache=True)
    params = SamplingParams(n=5, temperature=1.0, max_new_tokens=4, seed=3)  # 5 samples over 3 chunks
    out = gen.generate([PROMPTS[3]], params)
    ref = HFGenerator(model, tokenizer, batch_size=2).generate([PROMPTS[3]], params)
    _assert_same(out, ref)
    assert len(gen._prefix) >= 1


def test_weight_update_clears_the_store(model, tokenizer):
    gen = HFGenerator(model, tokenizer, prefix_cache=True)
    params = SamplingParams(temperature=0.0, max_new_tokens=6)
    first = gen.generate(PROMPTS, params)
    prompts = [extend(p, r[0].text) for p, r in zip(PROMPTS, first)]
    saved = model.model.layers[0].self_attn.k_proj.weight.detach().clone()
    try:
        with torch.no_grad():
            model.model.layers[0].self_attn.k_proj.weight.mul_(3.0)  # in place, like an optimizer step
        after = gen.generate(prompts, params)
        fresh = HFGenerator(model, tokenizer).generate(prompts, params)
    finally:
        with torch.no_grad():
            model.model.layers[0].self_attn.k_proj.weight.copy_(saved)
    _assert_same(after, fresh)


def test_store_lru_and_covering():
    kv = lambda n: [(torch.zeros(1, n, 2), torch.zeros(1, n, 2))]  # noqa: E731
    store = PrefixStore(max_tokens=10)
    store.add([1, 2, 3], kv(3))
    store.add([1, 2, 3, 4], kv(4))  # extends the first: replaces it
    assert len(store) == 1 and store.tokens == 4
    store.add([1, 2], kv(2))  # covered: nothing new
    assert len(store) == 1
    store.add([5, 6, 7], kv(3))
    hit = store.lookup([1, 2, 3, 9], limit=3)
    assert hit is not None and hit[1] == 3
    store.add([8, 8, 8, 8], kv(4))  # 11 tokens > 10: the least recently used ([5, 6, 7]) goes
    assert store.lookup([5, 6], limit=2) is None and store.tokens == 8
    assert store.lookup([1, 2, 3, 4, 5], limit=2)[1] == 2


def test_common_prefix_len():
    assert common_prefix_len((1, 2, 3), (1, 2, 4)) == 2
    assert common_prefix_len((1, 2, 3), (1, 2, 3, 4)) == 3
    assert common_prefix_len((), (1,)) == 0
    assert common_prefix_len((2,), (1,)) == 0
    a = tuple(range(1000))
    assert common_prefix_len(a, a[:637] + (-1,)) == 637


def test_bucketed_store_matches_a_full_scan():
    """Lookups go through the first-BUCKET-tokens index; the answer (entry and length, ties to
    the least recently used) must be what comparing with every entry gives."""
    import random

    from reasoner.generation.prefix_cache import BUCKET

    rng = random.Random(0)
    store = PrefixStore(max_tokens=2000)
    kv = lambda n: [(torch.zeros(1, n, 1), torch.zeros(1, n, 1))]  # noqa: E731
    stems = [[rng.randint(0, 3) for _ in range(rng.randint(1, BUCKET + 4))] for _ in range(6)]
    for _ in range(400):
        ids = rng.choice(stems) + [rng.randint(0, 3) for _ in range(rng.randint(0, 12))]
        if rng.random() < 0.5:
            store.add(ids, kv(len(ids)))
            keys = list(store._entries)
            assert not any(a != b and b[:len(a)] == a for a in keys for b in keys)  # no entry prefixes another
            assert store.tokens == sum(map(len, keys)) <= 2000
            continue
        best, best_len = None, 0
        for entry in store._entries:
            n = common_prefix_len(entry, tuple(ids))
            if n > best_len:
                best, best_len = entry, n
        hit = store.lookup(ids, limit=len(ids))
        assert (hit is None) == (best is None)
        if hit is not None:
            assert hit[1] == best_len and next(reversed(store._entries)) == best
