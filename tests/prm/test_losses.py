"""PRM losses on hand-computed tensors (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from reasoner.prm.losses import discriminative_loss, implicit_loss, implicit_rewards, step_probability


def test_step_probability_is_two_way_softmax():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    expected = torch.softmax(torch.stack([pos, neg], -1), -1)[:, 0]
    assert torch.allclose(step_probability(pos, neg), expected)


def test_hard_labels_cross_entropy():
    # step 1: logits (+2, 0), label 1 -> -log(e^2 / (e^2 + 1)) = log(1 + e^-2) = 0.126928
    # step 2: logits (0, +1), label 0 -> -log(e^1 / (1 + e^1)) = log(1 + e^-1) = 0.313262
    # mean = 0.220095
    loss, m = discriminative_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]), "hard")
    assert float(loss) == pytest.approx(0.2200948, abs=1e-6)
    assert m["step_acc"] == 1.0 and m["steps"] == 2


def test_hard_labels_use_the_threshold():
    # a soft label 0.3 is positive at threshold 0.25, negative at 0.5: log(1+e^-2) vs log(1+e^2)
    pos, neg, y = torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([0.3])
    assert float(discriminative_loss(pos, neg, y, "hard", 0.25)[0]) == pytest.approx(math.log1p(math.exp(-2)), abs=1e-6)
    assert float(discriminative_loss(pos, neg, y, "hard", 0.5)[0]) == pytest.approx(math.log1p(math.exp(2)), abs=1e-6)


def test_soft_labels_binary_cross_entropy():
    # z = l+ - l- = (2, -1); labels (0.75, 0.25)
    # step 1: -(0.75 log s(2) + 0.25 log(1 - s(2))) = 0.75*0.126928 + 0.25*2.126928 = 0.626928
    # step 2: -(0.25 log s(-1) + 0.75 log(1 - s(-1))) = 0.25*1.313262 + 0.75*0.313262 = 0.563262
    # mean = 0.595095
    loss, _ = discriminative_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.75, 0.25]), "soft")
    assert float(loss) == pytest.approx(0.5950948, abs=1e-6)


def test_soft_equals_hard_on_binary_labels():
    pos, neg, y = torch.randn(7), torch.randn(7), torch.tensor([1.0, 0, 1, 1, 0, 0, 1])
    assert float(discriminative_loss(pos, neg, y, "soft")[0]) == pytest.approx(float(discriminative_loss(pos, neg, y, "hard")[0]), abs=1e-6)


def test_scalar_head_is_neg_logit_zero():
    # z = (1, -2), labels (1, 0): (log(1+e^-1) + log(1+e^-2)) / 2 = 0.220095
    z = torch.tensor([1.0, -2.0])
    loss, _ = discriminative_loss(z, torch.zeros(2), torch.tensor([1.0, 0.0]), "hard")
    assert float(loss) == pytest.approx(0.2200948, abs=1e-6)


def test_loss_gradient_only_through_given_positions():
    pos = torch.tensor([0.5, -0.5], requires_grad=True)
    loss, _ = discriminative_loss(pos, torch.zeros(2), torch.tensor([1.0, 0.0]), "soft")
    loss.backward()
    # d/dz BCE = (sigmoid(z) - y) / n
    expected = (torch.sigmoid(torch.tensor([0.5, -0.5])) - torch.tensor([1.0, 0.0])) / 2
    assert torch.allclose(pos.grad, expected)


def test_bad_label_type():
    with pytest.raises(ValueError):
        discriminative_loss(torch.zeros(1), torch.zeros(1), torch.ones(1), "fuzzy")


def test_implicit_loss_by_hand():
    # row 1: mask (1, 1, 0): log-ratios (-1 - -1.5) + (-2 - -1) = 0.5 - 1.0 = -0.5; r = 0.5 * -0.5 = -0.25
    #        outcome 1 -> BCE = log(1 + e^0.25) = 0.825939
    # row 2: three tokens, ratio 1.0 each -> 3.0; r = 1.5; outcome 0 -> log(1 + e^1.5) = 1.701413
    # mean = 1.263676
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.2, -0.2]])
    ref = torch.tensor([[-1.5, -1.0, -9.0], [-1.2, -1.2, -1.2]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert implicit_rewards(logp, ref, mask, 0.5).tolist() == pytest.approx([-0.25, 1.5])
    loss, m = implicit_loss(logp, ref, mask, torch.tensor([1.0, 0.0]), beta=0.5)
    assert float(loss) == pytest.approx(1.2636763, abs=1e-6)
    assert m["outcome_acc"] == 0.0  # both rows on the wrong side of 0


def test_implicit_loss_zero_ratio_is_log2():
    # policy == reference: r = 0, sigmoid = 1/2, BCE = log 2 whatever the outcome
    x = torch.randn(3, 4)
    loss, _ = implicit_loss(x, x, torch.ones(3, 4), torch.tensor([1.0, 0.0, 1.0]), beta=0.05)
    assert float(loss) == pytest.approx(math.log(2), abs=1e-6)
