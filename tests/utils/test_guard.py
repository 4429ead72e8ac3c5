"""The step guard on hand-made tensors: a NaN loss or gradient never reaches the optimiser, an
exploding or non-finite update is undone (every optimiser of a joint step), a sane step passes."""

from __future__ import annotations

import pytest
import torch

from reasoner.errors import UserError
from reasoner.utils.guard import RefusedStep, StepGuard, check_loss, guarded_step, require_finite
from reasoner.utils.train import build_optimizer


def _param(*values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def _adam(p, lr=1e-3, wd=0.0):
    return build_optimizer([p], lr, wd, [0.9, 0.95])  # the fused AdamW every trainer uses


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_loss_refuses_non_finite_values_and_tensors(bad):
    with pytest.raises(RefusedStep, match="loss is"):
        check_loss("loss", bad)
    with pytest.raises(RefusedStep, match="value loss is"):
        check_loss("value loss", torch.tensor(bad, requires_grad=True))
    check_loss("loss", torch.tensor(0.5))


def test_nan_gradient_is_refused_before_the_optimiser_steps():
    p = _param(1.0, 2.0)
    opt = _adam(p)
    p.grad = torch.tensor([float("nan"), 1.0])
    with pytest.raises(RefusedStep, match="policy gradient norm is nan"):
        StepGuard(opt, "policy", max_grad_norm=1.0).step()
    assert torch.equal(p.detach(), torch.tensor([1.0, 2.0]))
    assert not opt.state  # the fused kernel never saw the NaN: no moments, no step count


def test_a_sane_step_passes_and_returns_the_pre_clip_norm():
    p = _param(1.0, 2.0, 3.0)
    opt = _adam(p, lr=1e-2)
    p.grad = torch.tensor([3.0, 4.0, 0.0])
    norm = StepGuard(opt, "policy", max_grad_norm=1.0).step()
    assert norm == pytest.approx(5.0)
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.8, 0.0]), atol=1e-5)  # clipped to 1
    assert not torch.equal(p.detach(), torch.tensor([1.0, 2.0, 3.0]))


def test_lr_1e30_with_a_tiny_gradient_explodes_and_is_undone():
    """Adam's step is ~lr whatever the gradient: 1e-11 of float noise moves a weight by ~1e27."""
    p = _param(0.02, -0.01, 0.03)
    opt = _adam(p, lr=1e30)
    p.grad = torch.full((3,), 1e-11)
    with pytest.raises(RefusedStep, match=r"policy update exploded \(\|delta\|/\|params\| = .*e\+2\d > optim.max_update_ratio=1"):
        StepGuard(opt, "policy", max_grad_norm=1.0).step()
    assert torch.equal(p.detach(), torch.tensor([0.02, -0.01, 0.03]))


def test_weight_decay_explodes_weights_with_zero_gradients():
    """GRPO with all-zero rewards: zero advantages, zero gradients — yet AdamW multiplies the
    weights by (1 - lr * wd) = -1e28 at lr 1e30, wd 0.01."""
    p = _param(0.5, -0.5)
    opt = _adam(p, lr=1e30, wd=0.01)
    p.grad = torch.zeros(2)
    with pytest.raises(RefusedStep, match="exploded"):
        StepGuard(opt, "policy", max_grad_norm=1.0).step()
    assert torch.equal(p.detach(), torch.tensor([0.5, -0.5]))


def test_zero_gradients_without_weight_decay_are_an_exact_no_op_even_at_lr_1e30():
    p = _param(0.5, -0.5)
    opt = _adam(p, lr=1e30)
    for _ in range(3):
        p.grad = torch.zeros(2)
        assert StepGuard(opt, "policy", max_grad_norm=1.0).step() == 0.0
    assert torch.equal(p.detach(), torch.tensor([0.5, -0.5]))


def test_the_bound_is_relative_and_configurable():
    p = _param(1.0, 1.0, 1.0, 1.0)  # |p| = 2; one Adam step of lr 0.6 moves each weight by 0.6: |delta| = 1.2
    p.grad = torch.ones(4)
    with pytest.raises(RefusedStep, match="= 0.6 > optim.max_update_ratio=0.5"):
        StepGuard(_adam(p, lr=0.6), max_update_ratio=0.5).step()
    StepGuard(_adam(p, lr=0.6), max_update_ratio=1.0).step()
    assert torch.allclose(p.detach(), torch.full((4,), 0.4))


def test_joint_step_undoes_every_optimiser_when_one_is_refused():
    """PPO: the policy's step is fine, the critic's explodes: neither is kept."""
    policy, critic = _param(1.0, 2.0), _param(0.1, 0.2)
    policy.grad, critic.grad = torch.ones(2), torch.ones(2)
    guards = [StepGuard(_adam(policy, lr=1e-3), "policy", 1.0), StepGuard(_adam(critic, lr=1e30), "critic", 1.0)]
    with pytest.raises(RefusedStep, match="critic update exploded"):
        guarded_step(*guards)
    assert torch.equal(policy.detach(), torch.tensor([1.0, 2.0]))
    assert torch.equal(critic.detach(), torch.tensor([0.1, 0.2]))


def test_joint_step_checks_every_gradient_before_any_optimiser_steps():
    policy, critic = _param(1.0), _param(2.0)
    policy.grad, critic.grad = torch.ones(1), torch.tensor([float("inf")])
    popt = _adam(policy)
    with pytest.raises(RefusedStep, match="critic gradient norm is inf"):
        guarded_step(StepGuard(popt, "policy", 1.0), StepGuard(_adam(critic), "critic", 1.0))
    assert not popt.state and float(policy.detach()) == 1.0


def test_without_an_update_bound_non_finite_parameters_are_still_refused():
    p = _param(1.0)
    p.grad = torch.tensor([1e30])
    opt = torch.optim.SGD([p], lr=1e30)
    with pytest.raises(RefusedStep, match=r"parameters became non-finite \(not undone: optim.max_update_ratio is off\)"):
        StepGuard(opt, "policy", max_grad_norm=None, max_update_ratio=None).step()


def test_parameters_already_huge_give_a_number_not_an_overflow():
    p = _param(1e30, -1e30)
    p.grad = torch.ones(2)
    StepGuard(_adam(p, lr=1e-3), max_grad_norm=1.0).step()  # a 1e-33 relative step: fine


@pytest.mark.parametrize("bad", [0, -1.0])
def test_a_bad_bound_is_a_config_error(bad):
    with pytest.raises(UserError, match="optim.max_update_ratio must be > 0"):
        StepGuard(_adam(_param(1.0)), max_update_ratio=bad)


def test_require_finite_names_the_tensor_and_ignores_integer_ones():
    require_finite({"rng": torch.zeros(3, dtype=torch.uint8), "w": torch.ones(2)}, "checkpoint step-1")
    with pytest.raises(UserError, match=r"checkpoint step-1 not saved: w is not finite \(no checkpoint had been saved yet\)"):
        require_finite({"ok": torch.ones(2), "w": torch.tensor([1.0, float("nan")])}, "checkpoint step-1")
