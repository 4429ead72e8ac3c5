"""Advantage estimators on hand-computed tensors (ALGORITHMS.md §5)."""

from __future__ import annotations

import math

import pytest
import torch

from reasoner.algos import gae, grpo_advantages, prime_advantages, rloo_advantages


def test_grpo_group_scaling_by_hand():
    # group 1: R = [1, 0, 0, 1] -> mean .5, unbiased std sqrt((4 * .25) / 3) = 0.57735
    # group 2: R = [1, 1, 1, 1] -> mean 1, std 0 -> all advantages 0
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    a = grpo_advantages(r, group_size=4, eps=0.0 + 1e-4)
    s = math.sqrt(1 / 3)
    expected = torch.tensor([0.5 / (s + 1e-4), -0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 0.5 / (s + 1e-4), 0, 0, 0, 0])
    torch.testing.assert_close(a, expected)


def test_grpo_batch_and_none_scaling():
    r = torch.tensor([2.0, 0.0, 1.0, 1.0])
    # group means: 1 and 1; centred: [1, -1, 0, 0]; batch std (unbiased) of r: sqrt(2/3)
    torch.testing.assert_close(grpo_advantages(r, 2, "none"), torch.tensor([1.0, -1.0, 0.0, 0.0]))
    bs = math.sqrt(2 / 3)
    torch.testing.assert_close(grpo_advantages(r, 2, "batch", eps=0.0), torch.tensor([1 / bs, -1 / bs, 0.0, 0.0]))
    with pytest.raises(ValueError):
        grpo_advantages(r, 2, "bogus")
    with pytest.raises(ValueError):
        grpo_advantages(r, 3)


def test_rloo_leave_one_out_by_hand():
    # R = [1, 0, 0, 1]: baseline_i = (sum - R_i) / 3 = [1/3, 2/3, 2/3, 1/3]
    a = rloo_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    torch.testing.assert_close(a, torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))


def test_gae_matches_slow_definition():
    torch.manual_seed(0)
    rewards, values = torch.randn(2, 5), torch.randn(2, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]).float()
    gamma, lam = 0.9, 0.8
    adv, ret = gae(rewards, values, mask, gamma, lam)
    for b in range(2):
        L = int(mask[b].sum())
        for t in range(L):
            # A_t = sum_l (gamma lam)^l delta_{t+l}, delta_t = r_t + gamma V_{t+1} - V_t, V_L = 0
            total = 0.0
            for l in range(L - t):
                v_next = values[b, t + l + 1] if t + l + 1 < L else 0.0
                delta = rewards[b, t + l] + gamma * v_next - values[b, t + l]
                total += (gamma * lam) ** l * delta
            assert adv[b, t].item() == pytest.approx(float(total), abs=1e-5)
            assert ret[b, t].item() == pytest.approx(float(total + values[b, t]), abs=1e-5)
        assert torch.all(adv[b, L:] == 0)


def test_prime_advantages_by_hand():
    # two samples, one group; outcome R = [1, 0] -> RLOO: [1, -1] placed on each last token
    # process r: sample0 [0.2, 0.4] (mean .3), sample1 [0.1, 0.0, 0.5] (mean .2)
    # process baselines (mean of the other sample): [0.2, 0.3]
    # process': s0 [0.0, 0.2]; s1 [-0.2, -0.3, 0.2]
    # returns (gamma 1): s0 outcome [1, 1] + process [0.2, 0.2] = [1.2, 1.2]
    #                    s1 outcome [-1, -1, -1] + process [-0.3, -0.1, 0.2] = [-1.3, -1.1, -0.8]
    outcome = torch.tensor([1.0, 0.0])
    process = torch.tensor([[0.2, 0.4, 0.0], [0.1, 0.0, 0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    raw = prime_advantages(outcome, process, mask, group_size=2, whiten=False)
    torch.testing.assert_close(raw, torch.tensor([[1.2, 1.2, 0.0], [-1.3, -1.1, -0.8]]))
    white = prime_advantages(outcome, process, mask, group_size=2)
    vals = torch.tensor([1.2, 1.2, -1.3, -1.1, -0.8])
    expected = (vals - vals.mean()) / vals.var(unbiased=False).add(1e-8).sqrt()
    torch.testing.assert_close(white[mask.bool()], expected)
    assert white[0, 2] == 0
