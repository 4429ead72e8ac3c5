"""Rollout layout and per-token log-probs: one padded forward equals each sequence on its own."""

from __future__ import annotations

import pytest
import torch

from reasoner import config
from reasoner.models import load_policy, load_value_model
from reasoner.algos import token_logprobs as gather_logprobs
from reasoner.rl.batch import build_batch, response_values
from reasoner.rl.batch import response_logprobs as token_logprobs
from tests.conftest import TINY


def _model(arch: str = "llama"):
    torch.manual_seed(0)
    model, tok = load_policy(config.load("train_rl", [*TINY, f"model.tiny.arch={arch}"]).model)
    return model.eval(), tok


def test_layout_left_pads_prompts_right_pads_completions_and_truncates():
    b = build_batch([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad_id=0, max_length=5)
    assert b.prompt_width == 3
    assert b.input_ids.tolist() == [[5, 6, 7, 1, 2, 0], [0, 0, 8, 3, 4, 9]]
    assert b.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert b.position_ids[1].tolist()[2:] == [0, 1, 2, 3]
    cut = build_batch([[5, 6, 7]], [[1, 2, 3, 4]], pad_id=0, max_length=5)
    assert cut.response_mask.tolist() == [[1, 1]]


def test_gather_logprobs_matches_log_softmax():
    logits = torch.randn(2, 3, 7)
    tgt = torch.randint(0, 7, (2, 3))
    exp = torch.log_softmax(logits, -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(gather_logprobs(logits, tgt), exp)


def test_batched_logprobs_equal_unpadded_single_sequences():
    model, tok = _model()
    prompts = [tok("Compute: 1 + 2")["input_ids"], tok("Compute: (3 * 4) - 5")["input_ids"]]
    comps = [tok("1 + 2 = 3\nAnswer: 3", add_special_tokens=False)["input_ids"], tok("12", add_special_tokens=False)["input_ids"]]
    batch = build_batch(prompts, comps, pad_id=tok.pad_token_id)
    with torch.no_grad():
        logp, ent, _ = token_logprobs(model, batch, with_entropy=True)
        for i, (p, c) in enumerate(zip(prompts, comps)):
            ids = torch.tensor([p + c])
            full = torch.log_softmax(model(input_ids=ids).logits[0, len(p) - 1:-1].float(), -1)
            ref = full.gather(-1, torch.tensor(c).unsqueeze(-1)).squeeze(-1)
            torch.testing.assert_close(logp[i, :len(c)], ref, atol=1e-5, rtol=1e-5)
    assert (ent[batch.response_mask > 0] > 0).all()


def test_generator_logprobs_match_training_logprobs():
    from reasoner.generation.base import SamplingParams
    from reasoner.generation.hf import HFGenerator

    model, tok = _model()
    prompt = "Compute: 7 + 5"
    outs = HFGenerator(model, tok, batch_size=4).generate([prompt], SamplingParams(n=3, temperature=1.0, max_new_tokens=10, seed=1))[0]
    pids = tok(prompt)["input_ids"]
    batch = build_batch([pids] * 3, [o.token_ids for o in outs], pad_id=tok.pad_token_id)
    with torch.no_grad():
        logp = token_logprobs(model, batch)[0]
    for i, o in enumerate(outs):
        torch.testing.assert_close(logp[i, :len(o.token_ids)], torch.tensor(o.logprobs), atol=1e-4, rtol=1e-4)


def test_response_values_shape_and_zero_init():
    model, tok = _model()
    critic = load_value_model(config.load("train_rl", TINY).model, model)
    batch = build_batch([[1, 2, 3], [4]], [[5, 6], [7]], pad_id=0)
    v = response_values(critic, batch)
    assert v.shape == (2, 2) and torch.count_nonzero(v) == 0


def _grouped_batch(tok):
    prompts = [tok("Compute: 1 + 2")["input_ids"]] * 3 + [tok("Compute: (3 * 4) - 5")["input_ids"]] * 2
    comps = [tok(t, add_special_tokens=False)["input_ids"] for t in ("1 + 2 = 3", "3", "12 -", "7\nAnswer: 7", "")]
    return build_batch(prompts, comps, pad_id=tok.pad_token_id)


def _logits_and_grads(model, fn, batch):
    model.zero_grad(set_to_none=True)
    logits = fn(model, batch)
    (torch.log_softmax(logits.float(), -1)[..., 5] * batch.response_mask).sum().backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_shared_prompt_pass_is_taken(arch):
    """Not silently the full pass: the distinct prompts run once (with a KV cache), then all
    rows' responses; never one forward over every row's prompt + response."""
    from reasoner.rl.batch import _shared_prompts, response_logits

    model, tok = _model(arch)
    model.train()
    batch = _grouped_batch(tok)
    assert _shared_prompts(model, batch) is not None
    shapes = []
    hook = model.register_forward_pre_hook(lambda m, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        response_logits(model, batch)
    finally:
        hook.remove()
    P, T = batch.prompt_width, batch.response_mask.size(1)
    assert shapes == [(2, P), (5, T - 1)]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_shared_prompt_pass_equals_the_full_pass(arch):
    """A group's prompt runs once; logits and gradients are those of the one-pass layout."""
    from reasoner.rl.batch import _full_logits, _shared_prompts, response_logits

    model, tok = _model(arch)
    model.train()
    batch = _grouped_batch(tok)
    first, inverse = _shared_prompts(model, batch)
    assert first.tolist() == sorted(first.tolist()) and len(first) == 2 and inverse.tolist()[:3] == [inverse[0]] * 3
    shared, g_shared = _logits_and_grads(model, response_logits, batch)
    full, g_full = _logits_and_grads(model, _full_logits, batch)
    m = batch.response_mask.bool()
    torch.testing.assert_close(shared[m], full[m], atol=1e-5, rtol=1e-5)
    for a, b in zip(g_shared, g_full):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_distinct_prompts_or_checkpointing_take_the_full_pass():
    from reasoner.rl.batch import _shared_prompts

    model, tok = _model()
    batch = _grouped_batch(tok)
    assert _shared_prompts(model, batch.rows(torch.tensor([0, 3]))) is None  # nothing shared
    model.train()
    # later 5.x releases renamed gradient_checkpointing_* to activation_checkpointing_* (old names warn)
    prefix = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    getattr(model, f"{prefix}_checkpointing_enable")()
    try:
        assert _shared_prompts(model, batch) is None
        with torch.no_grad():  # checkpointed layers drop the cache in training mode even here
            assert _shared_prompts(model, batch) is None
    finally:
        getattr(model, f"{prefix}_checkpointing_disable")()


def test_logprobs_at_the_sampling_temperature_match_trl():
    """token_logprobs(temperature=T) = log_softmax(logits / T)[token], entropy of that
    distribution, and equal to TRL's own functions (selective_log_softmax_and_entropy and the
    fused LM head GRPOTrainer patches in with its temperature)."""
    import copy

    import pytest

    import trl.trainer.utils as trl_utils  # the dev extra installs trl: never skip a TRL equivalence test
    model, tok = _model()
    prompt = tok("Compute: 1 + 2")["input_ids"]
    comps = [tok(t, add_special_tokens=False)["input_ids"] for t in ("1 + 2 = 3\nAnswer: 3", "Answer: 4")]
    batch = build_batch([prompt, prompt], comps, pad_id=tok.pad_token_id)
    P, T, m = batch.prompt_width, batch.response_mask.size(1), batch.response_mask.bool()
    with torch.no_grad():
        logp, ent, logits = token_logprobs(model, batch, with_entropy=True, keep_logits=True, temperature=0.7)
        raw = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids).logits[:, P - 1:-1].float()
        tempered = torch.log_softmax(raw / 0.7, -1)
        torch.testing.assert_close(logits, raw / 0.7, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(logp[m], tempered.gather(-1, batch.response_ids.unsqueeze(-1)).squeeze(-1)[m], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ent[m], -(tempered.exp() * tempered).sum(-1)[m], atol=1e-5, rtol=1e-5)
        assert (logp[m] - token_logprobs(model, batch)[0][m]).abs().max() > 1e-3  # T matters
        trl_logp, trl_ent = trl_utils.selective_log_softmax_and_entropy(raw, batch.response_ids, temperature=0.7)
        torch.testing.assert_close(logp[m], trl_logp[m], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ent[m], trl_ent[m], atol=1e-5, rtol=1e-5)
        twin = copy.deepcopy(model)
        trl_utils.add_fused_lm_head(twin, temperature=0.7, outputs=("log_probs", "entropy"))
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        labels[:, :P] = -100
        out = twin(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels, fused_lm_head=True)
        torch.testing.assert_close(logp[m], out.log_probs[:, -T:][m], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ent[m], out.entropy[:, -T:][m], atol=1e-5, rtol=1e-5)


def test_reference_logprobs_at_the_sampling_temperature():
    from reasoner.models import ReferenceModel
    from reasoner.rl.batch import reference_outputs

    model, tok = _model()
    batch = _grouped_batch(tok)
    m = batch.response_mask.bool()
    with torch.no_grad():
        logp, logits = reference_outputs(ReferenceModel(model, adapter_disabled=False), batch, keep_logits=True, temperature=0.7)
        own, _, own_logits = token_logprobs(model, batch, keep_logits=True, temperature=0.7)
    torch.testing.assert_close(logp[m], own[m])
    torch.testing.assert_close(logits[m], own_logits[m])
