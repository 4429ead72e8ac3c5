"""HFGenerator against slow, obviously-correct references on a tiny random Llama (CPU, seconds)."""

from __future__ import annotations

import pytest
import torch

from reasoner.generation import Completion, HFGenerator, SamplingParams, truncate_at_stop
from tests.generation.tiny import PROMPTS, tiny_llama

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer, heads=4, kv_heads=2)


def _ids(tokenizer, text):
    return tokenizer(text)["input_ids"]


@torch.no_grad()
def _reference_greedy(model, tokenizer, prompt, max_new, eos=(2,)):
    """No cache, no padding: a full forward per step."""
    ids = _ids(tokenizer, prompt)
    out = []
    for _ in range(max_new):
        logits = model(torch.tensor([ids + out])).logits[0, -1]
        out.append(int(logits.argmax()))
        if out[-1] in eos:
            break
    return out


@torch.no_grad()
def _reference_logprobs(model, tokenizer, prompt, gen_ids):
    ids = _ids(tokenizer, prompt)
    logits = model(torch.tensor([ids + gen_ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    start = len(ids) - 1
    return [float(logp[start + k, t]) for k, t in enumerate(gen_ids)]


def _greedy(max_new=12, **kw):
    return SamplingParams(temperature=0.0, max_new_tokens=max_new, **kw)


def test_truncate_at_stop_cuts_before_earliest():
    assert truncate_at_stop("abc\n\nQ: x", ["Q:", "\n\n"]) == ("abc", "\n\n")
    assert truncate_at_stop("no stop here", ["###"]) == ("no stop here", None)
    assert truncate_at_stop("xaby", ["ab", "b"]) == ("x", "ab")
    assert truncate_at_stop("xaby", ["b", "ab"]) == ("x", "ab")
    assert truncate_at_stop("abc", []) == ("abc", None)


def test_greedy_matches_no_cache_reference_with_left_padding(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=8)
    result = gen.generate(PROMPTS, _greedy())
    for prompt, comps in zip(PROMPTS, result):
        assert len(comps) == 1
        ref = _reference_greedy(model, tokenizer, prompt, 12)
        assert comps[0].token_ids == ref
        assert comps[0].text == tokenizer.decode(ref, skip_special_tokens=True)
        assert comps[0].finish_reason == "length"
        assert comps[0].stop_reason is None


def test_logprobs_are_raw_log_softmax(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=8)
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=10, n=2, seed=1)
    result = gen.generate(PROMPTS[:3], params)
    for prompt, comps in zip(PROMPTS, result):
        for c in comps:
            assert len(c.logprobs) == len(c.token_ids)
            ref = _reference_logprobs(model, tokenizer, prompt, c.token_ids)
            assert torch.allclose(torch.tensor(c.logprobs), torch.tensor(ref), atol=1e-4)


def test_stop_string_cuts_text_and_sets_reason(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=8)
    full = gen.generate([PROMPTS[1]], _greedy(max_new=16))[0][0]
    stop = full.text[4:6]
    cut = full.text.find(stop)
    comp = gen.generate([PROMPTS[1]], _greedy(max_new=16, stop=["@never@", stop]))[0][0]
    assert comp.finish_reason == "stop"
    assert comp.stop_reason == stop
    assert comp.text == full.text[:cut]
    assert comp.token_ids == full.token_ids[: cut + len(stop)]  # char tokens: one token per char
    assert comp.logprobs == pytest.approx(full.logprobs[: cut + len(stop)], abs=1e-5)


def test_stop_rows_leave_while_others_continue(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=8, compact_fraction=0.01)
    full = gen.generate(PROMPTS, _greedy(max_new=16))
    stop = full[0][0].text[2:4]
    result = gen.generate(PROMPTS, _greedy(max_new=16, stop=[stop]))
    for f, r in zip(full, result):
        text, matched = truncate_at_stop(f[0].text, [stop])
        assert r[0].text == text
        assert r[0].stop_reason == matched
        assert r[0].finish_reason == ("stop" if matched else "length")
        assert r[0].token_ids == f[0].token_ids[: len(r[0].token_ids)]


def test_eos_from_generation_config_list(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=8)
    full = gen.generate(PROMPTS, _greedy(max_new=16))
    eos_tok = full[2][0].token_ids[3]  # make a token the greedy path emits act as EOS
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [2, eos_tok]
    try:
        result = HFGenerator(model, tokenizer, batch_size=8, compact_fraction=0.01).generate(PROMPTS, _greedy(16))
    finally:
        model.generation_config.eos_token_id = old
    for f, r in zip(full, result):
        ids = f[0].token_ids
        if eos_tok in ids:
            end = ids.index(eos_tok) + 1
            assert r[0].token_ids == ids[:end]  # EOS included in ids ...
            assert r[0].text == tokenizer.decode(ids[: end - 1])  # ... but not in text
            assert (r[0].finish_reason, r[0].stop_reason) == ("stop", None)
            assert len(r[0].logprobs) == end
        else:
            assert r[0].token_ids == ids and r[0].finish_reason == "length"


def test_tokenizer_eos_stops_and_ignore_eos_continues(model, tokenizer):
    def force_eos(module, inputs, output):
        return output.index_fill(-1, torch.tensor([2]), 1e4)

    handle = model.lm_head.register_forward_hook(force_eos)
    try:
        params = SamplingParams(temperature=0.0, max_new_tokens=5)
        comp = HFGenerator(model, tokenizer).generate(["1+1="], params)[0][0]
        longer = HFGenerator(model, tokenizer, ignore_eos=True).generate(["1+1="], params)[0][0]
    finally:
        handle.remove()
    assert comp.token_ids == [2] and comp.text == ""
    assert (comp.finish_reason, comp.stop_reason) == ("stop", None)
    assert comp.logprobs == pytest.approx([0.0], abs=1e-4)
    assert longer.token_ids == [2] * 5 and longer.finish_reason == "length"


def test_max_new_tokens_gives_length(model, tokenizer):
    gen = HFGenerator(model, tokenizer)
    comp = gen.generate(["3*3="], _greedy(max_new=4))[0][0]
    assert len(comp.token_ids) == 4 and comp.finish_reason == "length"
    empty = gen.generate(["3*3="], _greedy(max_new=0))[0][0]
    assert empty == Completion("", [], [], "length", None)


def test_n_completions_and_duplicate_prompts(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=4)  # 3 prompts x n=3 > batch: samples split across chunks
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    result = gen.generate(prompts, _greedy(max_new=8, n=3))
    assert [len(r) for r in result] == [3, 3, 3]
    for prompt, comps in zip(prompts, result):
        ref = _reference_greedy(model, tokenizer, prompt, 8)
        assert all(c.token_ids == ref for c in comps)
    sampled = gen.generate(prompts, SamplingParams(n=3, max_new_tokens=8, seed=0))
    assert [len(r) for r in sampled] == [3, 3, 3]
    assert len({tuple(c.token_ids) for r in sampled for c in r}) > 1


def test_seeded_sampling_is_reproducible(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=8)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=123)
    a = gen.generate(PROMPTS, params)
    b = gen.generate(PROMPTS, params)
    c = gen.generate(PROMPTS, SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=7))
    assert a == b
    assert [x.token_ids for r in a for x in r] != [x.token_ids for r in c for x in r]


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_prompt_seeds_make_samples_independent_of_the_batch_they_share(model, tokenizer, top_p):
    """What `reasoner launch` needs: a prompt's samples are the same whether it is generated with
    all the others (one process, one chunk) or with a share of them in small chunks (a rank)."""
    prompts = PROMPTS + ["9", "55+55=", PROMPTS[0]]  # a repeated prompt keeps its own seed
    seeds = [100 + i for i in range(len(prompts))]

    def params(idx):
        return SamplingParams(n=3, temperature=1.0, top_p=top_p, max_new_tokens=10, seed=0,
                              prompt_seeds=[seeds[i] for i in idx])

    whole = HFGenerator(model, tokenizer, batch_size=64).generate(prompts, params(range(len(prompts))))
    ranks = {}
    for rank in (0, 1):
        idx = list(range(rank, len(prompts), 2))
        for i, out in zip(idx, HFGenerator(model, tokenizer, batch_size=4).generate([prompts[i] for i in idx], params(idx))):
            ranks[i] = out
    assert [[c.token_ids for c in whole[i]] for i in range(len(prompts))] == \
           [[c.token_ids for c in ranks[i]] for i in range(len(prompts))]
    for i in range(len(prompts)):
        for a, b in zip(whole[i], ranks[i]):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    assert [c.token_ids for c in whole[0]] != [c.token_ids for c in whole[-1]]  # same text, other seed
    assert len({tuple(c.token_ids) for c in whole[0]}) > 1  # the n samples differ
    with pytest.raises(ValueError, match="prompt_seeds has 1 seeds for 2 prompts"):
        HFGenerator(model, tokenizer).generate(prompts[:2], SamplingParams(n=1, prompt_seeds=[1]))


def test_tiny_top_p_equals_greedy(model, tokenizer):
    gen = HFGenerator(model, tokenizer, batch_size=8)
    greedy = gen.generate(PROMPTS, _greedy())
    nucleus = gen.generate(PROMPTS, SamplingParams(temperature=1.0, top_p=1e-6, max_new_tokens=12, seed=3))
    assert [r[0].token_ids for r in greedy] == [r[0].token_ids for r in nucleus]


@pytest.mark.parametrize("sort", [True, False])
def test_order_preserved_with_small_batches(model, tokenizer, sort):
    prompts = PROMPTS + ["9", "55+55="]
    one_by_one = [HFGenerator(model, tokenizer, batch_size=1).generate([p], _greedy(8))[0] for p in prompts]
    batched = HFGenerator(model, tokenizer, batch_size=3, sort_by_length=sort).generate(prompts, _greedy(8))
    assert [r[0].token_ids for r in batched] == [r[0].token_ids for r in one_by_one]
    for p, r in zip(prompts, batched):
        assert r[0].token_ids == _reference_greedy(model, tokenizer, p, 8)


def test_empty_prompt_list_and_bad_params(model, tokenizer):
    gen = HFGenerator(model, tokenizer)
    assert gen.generate([], SamplingParams()) == []
    with pytest.raises(ValueError):
        gen.generate(["1"], SamplingParams(n=0))
    with pytest.raises(ValueError):
        gen.generate(["1"], SamplingParams(top_p=0.0))


def test_training_mode_is_restored(model, tokenizer):
    model.train()
    try:
        HFGenerator(model, tokenizer).generate(["1+1="], _greedy(max_new=2))
        assert model.training
    finally:
        model.eval()


def test_finished_rows_leave_the_batch(model, tokenizer):
    full = HFGenerator(model, tokenizer).generate(PROMPTS, _greedy(max_new=16))
    stop = full[0][0].text[2:4]
    sizes = []
    hook = model.register_forward_pre_hook(
        lambda mod, args, kwargs: sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        HFGenerator(model, tokenizer, compact_fraction=0.01).generate(PROMPTS, _greedy(max_new=16, stop=[stop]))
    finally:
        hook.remove()
    assert sizes[0] == len(PROMPTS)
    assert min(sizes) < len(PROMPTS)
    assert sizes == sorted(sizes, reverse=True)


def test_identical_prompts_prefill_once(model, tokenizer):
    sizes = []
    hook = model.register_forward_pre_hook(
        lambda mod, args, kwargs: sizes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        out = HFGenerator(model, tokenizer).generate([PROMPTS[1]] * 2, SamplingParams(n=3, max_new_tokens=3, seed=0))
    finally:
        hook.remove()
    assert sizes[0] == (1, len(_ids(tokenizer, PROMPTS[1])))  # one prefill row for 6 sequences
    assert sizes[1:] == [(6, 1), (6, 1)]
    assert [len(r) for r in out] == [3, 3]


def test_preallocated_cache_matches_stock_cache(model, tokenizer):
    params = SamplingParams(n=2, temperature=0.8, max_new_tokens=12, seed=5)
    fast = HFGenerator(model, tokenizer, batch_size=4, preallocate_cache=True).generate(PROMPTS, params)
    stock = HFGenerator(model, tokenizer, batch_size=4, preallocate_cache=False).generate(PROMPTS, params)
    assert [c.token_ids for r in fast for c in r] == [c.token_ids for r in stock for c in r]
    for a, b in zip([c for r in fast for c in r], [c for r in stock for c in r]):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_preallocated_layer_grows_and_selects_rows():
    from reasoner.generation.hf import _PreallocatedLayer

    layer = _PreallocatedLayer(capacity=4)
    a, b = torch.randn(3, 2, 3, 5), torch.randn(3, 2, 3, 5)
    layer.update(a, a + 1)
    keys, values = layer.update(b, b + 1)  # 6 > capacity 4: grows
    assert torch.equal(keys, torch.cat([a, b], dim=2)) and torch.equal(values, torch.cat([a, b], dim=2) + 1)
    assert layer.get_seq_length() == 6
    layer.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(layer.keys, torch.cat([a, b], dim=2)[[2, 0]])


def test_sampler_frequencies_follow_probabilities():
    from reasoner.generation.hf import _sample

    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])).repeat(20000, 1)
    rng = torch.Generator().manual_seed(0)
    tok, lp = _sample(logits, SamplingParams(temperature=1.0), rng)
    freq = torch.bincount(tok, minlength=4).float() / len(tok)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015)
    assert torch.allclose(lp, logits.gather(1, tok[:, None]).squeeze(1), atol=1e-6)
    tok, _ = _sample(logits, SamplingParams(temperature=1.0, top_p=0.7), rng)  # keeps the top two
    freq = torch.bincount(tok, minlength=4).float() / len(tok)
    assert torch.allclose(freq, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.015)


def test_top_p_widens_past_the_first_candidates():
    from reasoner.generation.hf import _sample

    logits = torch.zeros(20000, 2000)  # flat: the nucleus of 0.5 is 1000 tokens, more than a first top-k
    tok, _ = _sample(logits, SamplingParams(temperature=1.0, top_p=0.49975), torch.Generator().manual_seed(0))
    assert 900 < len(torch.unique(tok)) <= 1000


def _all(result):
    return [c for r in result for c in r]


@pytest.mark.parametrize("arch,fuse", [("llama", True), ("llama", False), ("qwen2", True)])
def test_lean_decode_matches_the_hf_forward(tokenizer, arch, fuse, monkeypatch):
    """Same tokens and logprobs with stop strings, EOS and rows leaving the batch (GQA, padding),
    with small layers' projections fused or not."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from reasoner.generation import lean_decode

    if not fuse:
        monkeypatch.setattr(lean_decode, "FUSE_MAX_ELEMENTS", 0)

    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if arch == "llama" else (Qwen2Config, Qwen2ForCausalLM)
    torch.manual_seed(3)
    model = model_cls(config_cls(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=1,
                                 eos_token_id=2)).eval()
    assert lean_decode.step_fn(model) is not None
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=16, stop=["+"], seed=4)
    lean = _all(HFGenerator(model, tokenizer, batch_size=8).generate(PROMPTS, params))
    stock = _all(HFGenerator(model, tokenizer, batch_size=8, lean_decode=False).generate(PROMPTS, params))
    assert [c.token_ids for c in lean] == [c.token_ids for c in stock]
    assert [c.finish_reason for c in lean] == [c.finish_reason for c in stock]
    assert {c.finish_reason for c in lean} == {"stop", "length"}
    for a, b in zip(lean, stock):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_lean_decode_declines_what_it_does_not_reproduce(model):
    from reasoner.generation import lean_decode

    assert lean_decode.step_fn(model) is not None
    handle = model.model.layers[0].mlp.register_forward_hook(lambda *a: None)
    try:
        assert lean_decode.step_fn(model) is None  # the hook would be skipped
    finally:
        handle.remove()
    model.config.hidden_act = "gelu"
    try:
        assert lean_decode.step_fn(model) is None
    finally:
        model.config.hidden_act = "silu"


def test_decode_batch_equals_batch_decode(tokenizer):
    """The direct tokenizers-backend decode gives what transformers' batch_decode gives (special
    tokens skipped), for any ids; a tokenizer that post-processes keeps batch_decode."""
    import random

    from reasoner.generation.hf import decode_batch

    rnd = random.Random(0)
    seqs = [[rnd.randrange(len(tokenizer)) for _ in range(rnd.randrange(0, 30))] for _ in range(200)]
    assert decode_batch(tokenizer, seqs) == tokenizer.batch_decode(seqs, skip_special_tokens=True)

    class Shouting(type(tokenizer)):
        def _decode(self, *args, **kwargs):
            return super()._decode(*args, **kwargs).upper()

    loud = Shouting(tokenizer_object=tokenizer._tokenizer)
    assert decode_batch(loud, seqs[:5]) == [t.upper() for t in tokenizer.batch_decode(seqs[:5], skip_special_tokens=True)]
