"""Ragged group baselines (RLEP's n + M groups) and process-supervision advantages, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from reasoner.algos import grpo_advantages, rloo_advantages
from reasoner.algos.groups import process_advantages, ragged_group_advantages


def test_ragged_grpo_by_hand():
    # group A (3): [1, 0, 1] mean 2/3, unbiased std sqrt(1/3); group B (2): [0, 1] mean .5, std sqrt(.5)
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    a = ragged_group_advantages(r, [3, 2], "grpo", "group", eps=0.0)
    sa, sb = math.sqrt(1 / 3), math.sqrt(0.5)
    exp = torch.tensor([(1 / 3) / sa, (-2 / 3) / sa, (1 / 3) / sa, -0.5 / sb, 0.5 / sb])
    torch.testing.assert_close(a, exp)
    torch.testing.assert_close(ragged_group_advantages(r, [3, 2], "grpo", "none"), torch.tensor([1 / 3, -2 / 3, 1 / 3, -0.5, 0.5]))


def test_ragged_rloo_by_hand_and_singletons():
    r = torch.tensor([1.0, 0.0, 0.0, 5.0])
    # group of 3: 1 - 0 = 1, 0 - .5 = -.5, 0 - .5 = -.5; group of 1: 0 (no baseline to compare to)
    torch.testing.assert_close(ragged_group_advantages(r, [3, 1], "rloo"), torch.tensor([1.0, -0.5, -0.5, 0.0]))


def test_ragged_equals_fixed_size_estimators():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    for scale in ("group", "batch", "none"):
        torch.testing.assert_close(ragged_group_advantages(r, [4, 4], "grpo", scale), grpo_advantages(r, 4, scale))
    torch.testing.assert_close(ragged_group_advantages(r, [4, 4], "rloo"), rloo_advantages(r, 4))


def test_ragged_rejects_bad_sizes():
    with pytest.raises(ValueError):
        ragged_group_advantages(torch.zeros(4), [3, 2])
    with pytest.raises(ValueError):
        ragged_group_advantages(torch.zeros(2), [2], "ppo")


def test_process_advantages_by_hand():
    # one group of 2; step rewards .9 .1 on row 0 (ends at t=1, t=3), .5 on row 1 (t=2)
    sr = torch.tensor([[0.0, 0.9, 0.0, 0.1], [0.0, 0.0, 0.5, 0.0]])
    sm = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    vals = torch.tensor([0.9, 0.1, 0.5])
    mu, sd = vals.mean(), vals.std()
    n = (vals - mu) / (sd + 1e-4)
    exp = torch.tensor([[n[0] + n[1], n[0] + n[1], n[1], n[1]], [n[2], n[2], n[2], 0.0]])
    torch.testing.assert_close(process_advantages(sr, sm, [2]), exp)
