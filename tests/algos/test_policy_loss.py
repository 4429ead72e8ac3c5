"""Clipped surrogate, dual clip, aggregations, KL and the PPO value loss by hand."""

from __future__ import annotations

import math

import pytest
import torch

from reasoner.algos import aggregate, clipped_surrogate, clipped_value_loss, k3


def test_clip_higher_by_hand():
    # ratios e^{logp-old}: [1.5, 0.5, 1.1]; A = [+1, -1, +1]; eps_low .2, eps_high .28
    # t0: min(1.5*1, 1.28*1) = 1.28 -> l = -1.28
    # t1: min(0.5*-1, 0.8*-1) = -0.8 -> l = 0.8
    # t2: min(1.1, 1.1) = 1.1 -> l = -1.1
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, -1.0, 1.0]])
    mask = torch.ones(1, 3)
    loss, m = clipped_surrogate(logp, old, adv, mask, eps_low=0.2, eps_high=0.28)
    assert loss.item() == pytest.approx((-1.28 + 0.8 - 1.1) / 3, abs=1e-6)
    assert m["clip_fraction"] == pytest.approx(2 / 3)


def test_dual_clip_caps_negative_advantage_loss():
    # ratio 20, A = -1: plain l = -min(-20, -1.2) = 20; dual clip c=10 -> min(20, 10) = 10
    logp = torch.log(torch.tensor([[20.0, 20.0]]))
    adv = torch.tensor([-1.0, 1.0])
    loss_plain, _ = clipped_surrogate(logp, torch.zeros(1, 2), adv[:1], torch.tensor([[1.0, 0.0]]))
    loss_dual, _ = clipped_surrogate(logp, torch.zeros(1, 2), adv[:1], torch.tensor([[1.0, 0.0]]), dual_clip=10.0)
    assert loss_plain.item() == pytest.approx(20.0)
    assert loss_dual.item() == pytest.approx(10.0)
    # positive advantages are untouched by the dual clip: ratio 20 clipped to 1.2 -> -1.2
    pos, _ = clipped_surrogate(logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.tensor([[1.0, 0.0]]), dual_clip=10.0)
    assert pos.item() == pytest.approx(-1.2)


def test_aggregations_by_hand():
    # per-token losses with lengths 1 and 3: [[4, x, x], [1, 2, 3]]
    l = torch.tensor([[4.0, 9.0, 9.0], [1.0, 2.0, 3.0]])
    m = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert aggregate(l, m, "token-mean").item() == pytest.approx(10 / 4)        # (4+1+2+3)/4
    assert aggregate(l, m, "seq-mean-token-mean").item() == pytest.approx(3.0)  # (4 + 2) / 2
    assert aggregate(l, m, "constant", max_len=5).item() == pytest.approx(1.0)  # 10 / (2*5)
    with pytest.raises(ValueError):
        aggregate(l, m, "nope")


def test_k3_by_hand_and_kl_added_with_beta():
    logp, ref = torch.tensor([[-1.0]]), torch.tensor([[-2.0]])
    # d = ref - logp = -1: e^-1 + 1 - 1 = e^-1
    assert k3(logp, ref).item() == pytest.approx(math.exp(-1))
    loss, m = clipped_surrogate(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 1), ref_logp=ref, beta=0.5)
    assert loss.item() == pytest.approx(0.5 * math.exp(-1))
    assert m["kl"] == pytest.approx(math.exp(-1))


def test_surrogate_gradient_is_advantage_at_ratio_one():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = clipped_surrogate(logp, torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]), torch.ones(1, 2))
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.0, 0.5]]))  # -A / 2 tokens


def test_clipped_value_loss_by_hand():
    # V = 1.0, V_old = 0.5, G = 0: unclipped (1-0)^2 = 1; clipped V = 0.5 + .2 = .7 -> .49; max = 1 -> 0.5
    loss, _ = clipped_value_loss(torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([[0.0]]), torch.ones(1, 1), clip=0.2)
    assert loss.item() == pytest.approx(0.5)
    # V = 0.6, V_old = 0.5, G = 2: unclipped 1.96, clipped (0.6 - 2)^2 same -> 0.98
    loss, _ = clipped_value_loss(torch.tensor([[0.6]]), torch.tensor([[0.5]]), torch.tensor([[2.0]]), torch.ones(1, 1), clip=0.2)
    assert loss.item() == pytest.approx(0.98)
