"""The update loop: moves log-probs the way advantages say, micro-batching changes nothing,
a NaN loss stops before the optimizer step."""

from __future__ import annotations

import copy

import pytest
import torch

from reasoner import config
from reasoner.models import load_policy
from reasoner.rl.batch import build_batch
from reasoner.rl.batch import response_logprobs as token_logprobs
from reasoner.rl.update import NonFiniteLoss, UpdatePlan, policy_update
from reasoner.utils.train import build_optimizer, build_scheduler
from tests.conftest import TINY


def _setup(lr=1e-2):
    torch.manual_seed(0)
    model, tok = load_policy(config.load("train_rl", TINY).model)
    model.train()
    prompts = [tok("Compute: 1 + 2")["input_ids"]] * 4
    comps = [tok(t, add_special_tokens=False)["input_ids"] for t in ("Answer: 3", "Answer: 4", "12", "1 + 2 = 3")]
    batch = build_batch(prompts, comps, tok.pad_token_id)
    opt = build_optimizer(model.parameters(), lr, 0.0, [0.9, 0.95])
    return model, batch, opt, build_scheduler(opt, "constant", 0, 10)


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "constant"])
def test_positive_advantage_raises_logprob(aggregation):
    model, batch, opt, sched = _setup()
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    with torch.no_grad():
        before = (token_logprobs(model, batch)[0] * batch.response_mask).sum(1)
    policy_update(model, opt, sched, batch, adv, batch.response_mask, UpdatePlan(aggregation=aggregation, max_len=12), torch.Generator())
    with torch.no_grad():
        after = (token_logprobs(model, batch)[0] * batch.response_mask).sum(1)
    assert float((adv * (after - before)).sum()) > 0  # the surrogate objective went up


def test_single_positive_sample_gains_and_negative_loses():
    for sign in (1.0, -1.0):
        model, batch, opt, sched = _setup(lr=1e-3)
        one = batch.rows(slice(0, 1))
        with torch.no_grad():
            before = (token_logprobs(model, one)[0] * one.response_mask).sum()
        policy_update(model, opt, sched, one, torch.tensor([sign]), one.response_mask, UpdatePlan(), torch.Generator())
        with torch.no_grad():
            after = (token_logprobs(model, one)[0] * one.response_mask).sum()
        assert sign * float(after - before) > 0


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "constant"])
def test_micro_batches_give_the_same_update_as_one_batch(aggregation):
    # SGD at lr 1: the weight change is the gradient itself. (Adam's first step is ~lr * sign(g),
    # so float noise in a gradient near 0 flipped a whole lr-sized step on some CPUs.)
    model, batch, _, _ = _setup()
    twin = copy.deepcopy(model)
    opt, opt2 = torch.optim.SGD(model.parameters(), lr=1.0), torch.optim.SGD(twin.parameters(), lr=1.0)
    adv = torch.tensor([0.5, -1.0, 2.0, 0.3])
    m1 = policy_update(model, opt, build_scheduler(opt, "constant", 0, 10), batch, adv, batch.response_mask,
                       UpdatePlan(micro_batch=4, aggregation=aggregation), torch.Generator())
    m2 = policy_update(twin, opt2, build_scheduler(opt2, "constant", 0, 10), batch, adv, batch.response_mask,
                       UpdatePlan(micro_batch=1, aggregation=aggregation), torch.Generator())
    assert m1["loss"] == pytest.approx(m2["loss"], rel=1e-5, abs=1e-7)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, atol=1e-4, rtol=1e-4)  # the same gradient, up to float noise


def test_nan_advantage_raises_before_any_step():
    model, batch, opt, sched = _setup()
    snapshot = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteLoss, match="nan"):
        policy_update(model, opt, sched, batch, torch.tensor([float("nan"), 0, 0, 0]), batch.response_mask, UpdatePlan(), torch.Generator())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshot[k])


def test_ratio_kl_and_entropy_at_the_sampling_temperature_match_a_hand_computation():
    """At T = 0.7 the update's ratio, k3 KL, entropy and loss are those of log_softmax(logits / 0.7)."""
    from reasoner.rl.batch import _full_logits

    T = 0.7
    model, batch, opt, sched = _setup(lr=0.0)
    m = batch.response_mask
    with torch.no_grad():
        logq = torch.log_softmax(_full_logits(model, batch).float() / T, -1)
    logp = logq.gather(-1, batch.response_ids.unsqueeze(-1)).squeeze(-1)
    gen = torch.Generator().manual_seed(0)
    old = logp - 0.1 + 0.05 * torch.randn(logp.shape, generator=gen)
    ref = logp + 0.3 * torch.randn(logp.shape, generator=gen)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    plan = UpdatePlan(beta=0.1, kl_estimator="k3", temperature=T)
    got = policy_update(model, opt, sched, batch, adv, m, plan, torch.Generator(), old_logp=old, ref_logp=ref)

    ratio = torch.exp(logp - old)
    surrogate = -torch.min(ratio * adv[:, None], ratio.clamp(0.8, 1.2) * adv[:, None])
    k3 = torch.exp(ref - logp) - (ref - logp) - 1
    entropy = -(logq.exp() * logq).sum(-1)
    mean = lambda x: float((x * m).sum() / m.sum())  # noqa: E731
    assert got["ratio_mean"] == pytest.approx(mean(ratio), rel=1e-5)
    assert got["kl"] == pytest.approx(mean(k3), rel=1e-5)
    assert got["entropy"] == pytest.approx(mean(entropy), rel=1e-5)
    assert got["loss"] == pytest.approx(mean(surrogate + 0.1 * k3), rel=1e-5, abs=1e-7)
