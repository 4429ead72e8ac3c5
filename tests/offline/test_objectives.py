"""OREO on a real tiny model: which parameters each loss reaches, state selection per level, KL options."""

from __future__ import annotations

import pytest
import torch

from reasoner.algos import full_vocab_kl, k3, oreo_value_loss, token_logprobs
from reasoner.config import ModelConfig, TinyConfig
from reasoner.offline.data import Sequence, collate
from reasoner.offline.objectives import oreo_losses, states

TINY = TinyConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)


def models(lora: bool = False):
    from reasoner.config import LoraConfig
    from reasoner.models import load_policy, load_reference, load_value_model

    cfg = ModelConfig(name_or_path="tiny-arith", device="cpu", dtype="float32", tiny=TINY,
                      lora=LoraConfig(enabled=lora, r=4, alpha=8))
    policy, tok = load_policy(cfg)
    reference = load_reference(cfg, policy)
    value = load_value_model(cfg, policy)
    torch.nn.init.normal_(value.head.weight, std=0.5)  # non-zero so the backbone gets gradient too
    with torch.no_grad():  # move the policy off the reference so rho != 0
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    policy.train()
    value.train()
    return policy, value, reference, tok


def batch_of(tok):
    seqs = []
    for text, steps, r in [("1 + 2 = 3\nAnswer: 3", [9, 11], 1.0), ("1 + 2 = 4\nAnswer: 4", [9, 11], 0.0)]:
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(Sequence("p", tok("Compute: 1 + 2")["input_ids"], ids, [0] * steps[0] + [1] * steps[1], r))
    return collate(seqs, tok.pad_token_id)


def grads(module):
    return [p.grad for p in module.parameters() if p.requires_grad]


@pytest.mark.parametrize("level,lora", [("token", False), ("step", False), ("response", False), ("token", True)])
def test_value_loss_reaches_only_the_value_model_and_policy_loss_only_the_policy(level, lora):
    policy, value, reference, tok = models(lora)
    b = batch_of(tok)
    v_loss, p_loss, m = oreo_losses(policy, value, reference, b, level, beta=0.5, kl_coef=0.1, kl_estimator="full")
    v_loss.backward(retain_graph=True)
    assert all(g is None for g in grads(policy))
    assert all(g is not None for g in grads(value)) and float(value.head.weight.grad.abs().sum()) > 0
    assert sum(float(g.abs().sum()) for g in grads(value.backbone)) > 0
    value.zero_grad(set_to_none=True)
    p_loss.backward()
    assert all(g is None for g in grads(value))
    policy_grads = grads(policy)
    assert policy_grads and all(g is not None for g in policy_grads)
    assert sum(float(g.abs().sum()) for g in policy_grads) > 0
    assert m["kl"] > 0


def test_token_level_equals_the_formula_on_the_model_outputs():
    policy, value, reference, tok = models()
    b = batch_of(tok)
    v_loss, p_loss, m = oreo_losses(policy, value, reference, b, "token", beta=0.5, kl_coef=0.0, kl_estimator="k3")
    with torch.no_grad():
        logits = policy(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
        ref_logits = reference(b["input_ids"], b["attention_mask"])[:, :-1]
        V = value(b["input_ids"], b["attention_mask"])[:, :-1]
    rho = (token_logprobs(logits, b["targets"]) - token_logprobs(ref_logits, b["targets"])) * b["action_mask"]
    # slow loop: per trajectory and state, V + beta * sum_{i>=t} rho_i - R
    errs_v, errs_p = [], []
    for i in range(2):
        pos = [j for j in range(rho.size(1)) if b["action_mask"][i, j] > 0]
        for t in pos:
            to_go = sum(float(rho[i, j]) for j in pos if j >= t)
            errs_v.append(float(V[i, t]) + 0.5 * to_go - float(b["rewards"][i]))
            errs_p.append(float(V[i, t]) + 0.5 * to_go - float(b["rewards"][i]))
    assert v_loss.item() == pytest.approx(sum(e * e for e in errs_v) / len(errs_v), rel=1e-5)
    assert p_loss.item() == pytest.approx(sum(e * e for e in errs_p) / len(errs_p), rel=1e-5)


def test_kl_options_match_direct_computation():
    policy, value, reference, tok = models()
    b = batch_of(tok)
    with torch.no_grad():
        logits = policy(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
        ref_logits = reference(b["input_ids"], b["attention_mask"])[:, :-1]
    mask = b["action_mask"]
    full = (full_vocab_kl(logits, ref_logits) * mask).sum() / mask.sum()
    kk = (k3(token_logprobs(logits, b["targets"]), token_logprobs(ref_logits, b["targets"])) * mask).sum() / mask.sum()
    for est, want in (("full", full), ("k3", kk)):
        _, p_with, m = oreo_losses(policy, value, reference, b, "token", 0.5, 2.0, est)
        _, p_without, _ = oreo_losses(policy, value, reference, b, "token", 0.5, 0.0, est)
        assert m["kl"] == pytest.approx(float(want), rel=1e-5)
        assert (p_with - p_without).item() == pytest.approx(2.0 * float(want), rel=1e-4)


def test_states_per_level_by_hand():
    # one row: prompt [5, 6], response [7, 8, 9] in steps [0, 1, 1] -> shifted index 1..3 are actions
    b = collate([Sequence("p", [5, 6], [7, 8, 9], [0, 1, 1], 1.0)], pad_id=0)
    values = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    rho = torch.tensor([[0.0, 1.0, 2.0, 4.0]])
    V, r, mask = states(b, "token", values, rho)
    assert V.tolist() == values.tolist() and mask.tolist() == [[0, 1, 1, 1]]
    # step level: state before step 0 = index 1 (V .2, rho 1), before step 1 = index 2 (V .3, rho 2+4)
    V, r, mask = states(b, "step", values, rho)
    assert V.tolist() == [[pytest.approx(0.2), pytest.approx(0.3)]] and r.tolist() == [[1.0, 6.0]]
    assert mask.tolist() == [[1.0, 1.0]]
    # response level: the first state only, rho summed over the response
    V, r, mask = states(b, "response", values, rho)
    assert V.tolist() == [[pytest.approx(0.2)]] and r.tolist() == [[7.0]] and mask.tolist() == [[1.0]]
    # and the value loss on these step states, by hand with beta .5, R = 1:
    # err = [.2 + .5*(1+6) - 1, .3 + .5*6 - 1] = [2.7, 2.3] -> (7.29 + 5.29) / 2
    loss, _ = oreo_value_loss(*states(b, "step", values, rho)[:2], states(b, "step", values, rho)[2], b["rewards"], 0.5)
    assert loss.item() == pytest.approx((7.29 + 5.29) / 2)


def test_rft_is_sfts_loss_on_the_response_tokens():
    """RFT is written once: SFT's response loss (train.sft) on the collated samples, the same
    number as SFT's own batching of those (prompt, response) ids, and the mean response-token NLL."""
    from reasoner.offline.objectives import rft_loss
    from reasoner.train.sft import response_loss
    from reasoner.utils.train import pad_batch

    policy, _, _, tok = models()
    prompt = tok("Compute: 1 + 2")["input_ids"]
    responses = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in ("Answer: 3", "1 + 2 = 3\nAnswer: 3")]
    seqs = [Sequence("p", prompt, r, [0] * len(r), 1.0) for r in responses]
    b = collate(seqs, tok.pad_token_id)
    loss, metrics = rft_loss(policy, b)
    x, mask, lab = pad_batch([prompt + r for r in responses], tok.pad_token_id, [[-100] * len(prompt) + r for r in responses])
    total, n = response_loss(policy, x, mask, lab)
    assert n == sum(map(len, responses)) and float(loss) == pytest.approx(float(total) / n, rel=1e-6)
    logp = token_logprobs(policy(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1], b["targets"])
    assert float(loss) == pytest.approx(float(-(logp * b["action_mask"]).sum() / b["action_mask"].sum()), rel=1e-5)
    assert metrics["sft_loss"] == float(loss.detach())
