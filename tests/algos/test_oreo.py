"""OREO value/policy losses by hand, stop-gradients, step sums, full-vocabulary KL, DPO."""

from __future__ import annotations

import math

import pytest
import torch

from reasoner.algos import dpo_loss, full_vocab_kl, oreo_policy_loss, oreo_value_loss, step_sums

BETA = 0.5


def test_value_loss_by_hand():
    # one trajectory, 3 states, R = 1; rho = [0.2, -0.4, 0.6]; suffix sums [0.4, 0.2, 0.6]
    # V = [0.1, 0.3, 0.5]: err = V + .5*suffix - 1 = [-0.7, -0.6, -0.2] -> mean sq = (0.49+0.36+0.04)/3
    V = torch.tensor([[0.1, 0.3, 0.5]])
    rho = torch.tensor([[0.2, -0.4, 0.6]])
    loss, _ = oreo_value_loss(V, rho, torch.ones(1, 3), torch.tensor([1.0]), BETA)
    assert loss.item() == pytest.approx((0.49 + 0.36 + 0.04) / 3)


def test_policy_loss_by_hand_with_mask():
    # states 2 (third masked); R = 0; rho = [0.2, -0.4, 9]; future sums (i > t): [-0.4, 0]
    # err = V + .5*(rho_t + future) - 0 = [0.1 + .5*(-0.2), 0.3 + .5*(-0.4)] = [0.0, 0.1] -> mean sq 0.005
    V = torch.tensor([[0.1, 0.3, 7.0]])
    rho = torch.tensor([[0.2, -0.4, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, _ = oreo_policy_loss(V, rho, mask, torch.tensor([0.0]), BETA)
    assert loss.item() == pytest.approx(0.005)


def test_stop_gradients_route_to_the_right_tensors():
    V = torch.tensor([[0.1, 0.3, 0.5]], requires_grad=True)
    rho = torch.tensor([[0.2, -0.4, 0.6]], requires_grad=True)
    R, m = torch.tensor([1.0]), torch.ones(1, 3)
    oreo_value_loss(V, rho, m, R, BETA)[0].backward()
    assert V.grad is not None and V.grad.abs().sum() > 0
    assert rho.grad is None  # sg[sum rho] in the value loss
    V.grad = None
    oreo_policy_loss(V, rho, m, R, BETA)[0].backward()
    assert V.grad is None  # sg[V] in the policy loss
    # d/d rho_t of mean (V_t + beta(rho_t + sg future) - R)^2 = 2 beta err_t / S: only its own state
    err = torch.tensor([0.1 + 0.5 * (0.2 + 0.2), 0.3 + 0.5 * (-0.4 + 0.6), 0.5 + 0.5 * 0.6]) - 1.0
    torch.testing.assert_close(rho.grad, (2 * BETA * err / 3).unsqueeze(0))


def test_step_sums_and_step_level_loss():
    # tokens of 2 steps: step ids [0, 0, 1, 1, -1]; token rho [.1, .2, .3, .4, 9]
    rho_tok = torch.tensor([[0.1, 0.2, 0.3, 0.4, 9.0]])
    ids = torch.tensor([[0, 0, 1, 1, -1]])
    step_rho = step_sums(rho_tok, ids, num_steps=2)
    torch.testing.assert_close(step_rho, torch.tensor([[0.3, 0.7]]))
    # step-level value loss with V = [0, 0], R = 1: suffix [1.0, 0.7] -> err [-.5, -.65]
    loss, _ = oreo_value_loss(torch.zeros(1, 2), step_rho, torch.ones(1, 2), torch.tensor([1.0]), BETA)
    assert loss.item() == pytest.approx((0.25 + 0.4225) / 2)


def test_full_vocab_kl_matches_direct_computation():
    torch.manual_seed(0)
    logits, ref = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    got = full_vocab_kl(logits, ref)
    p, q = torch.softmax(logits, -1), torch.softmax(ref, -1)
    expected = torch.zeros(2, 3)
    for b in range(2):
        for t in range(3):
            expected[b, t] = sum(p[b, t, v] * math.log(p[b, t, v] / q[b, t, v]) for v in range(7))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.allclose(full_vocab_kl(logits, logits), torch.zeros(2, 3), atol=1e-6)


def test_dpo_loss_by_hand():
    # margin = (-1 - -2) - (-3 - -2) = 1 - (-1) = 2; beta .1 -> -log sigmoid(0.2)
    loss, m = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.1)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.2))))
    assert m["reward_accuracy"] == 1.0
