"""Our GRPO / DAPO / Dr. GRPO / RLOO losses equal TRL's on the same tensors.

TRL computes its losses inside trainer methods; we call those methods on a stand-in `self` that
carries only the attributes they read, and feed them the very tensors our functions get.
trl is in the dev extra, so a missing trl is an error here, not a skip; set REASONER_SKIP_TRL=1
to skip these tests on purpose (an install without the dev extra).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

if os.environ.get("REASONER_SKIP_TRL") == "1":
    pytest.skip("REASONER_SKIP_TRL=1", allow_module_level=True)
# dev extra: an ImportError here fails the run loudly instead of skipping the comparison
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402
from trl.trainer.rloo_trainer import RLOOTrainer  # noqa: E402

from reasoner.algos import clipped_surrogate, grpo_advantages, rloo_advantages, sequence_clipped_surrogate  # noqa: E402

B, T, G, MAX_LEN = 4, 6, 2, 8


class _Metrics(dict):
    def __missing__(self, key):
        self[key] = value = {} if key in ("train", "eval") else []
        return value


def _tensors(seed=0):
    torch.manual_seed(seed)
    logp = -torch.rand(B, T) * 2
    old = logp + 0.3 * torch.randn(B, T)
    ref = logp + 0.3 * torch.randn(B, T)
    mask = torch.ones(B, T)
    mask[0, 4:] = 0
    mask[3, 2:] = 0
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    return logp, old, ref, mask, rewards


def _fake_trainer(cls, logp, **attrs):
    accel = SimpleNamespace(num_processes=1, gather=lambda x: x, gather_for_metrics=lambda x: x,
                            reduce=lambda x, reduction="sum": x)
    metrics = {"train": _Metrics(), "eval": _Metrics()}
    fake = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=accel, _metrics=metrics, aux_loss_enabled=False,
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token",
        use_vllm=False, vllm_importance_sampling_correction=False, current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False, use_adaptive_entropy=False, entropy_coef=0.0,
        max_completion_length=MAX_LEN, args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        **attrs,
    )
    return fake


def _inputs(mask, **extra):
    return {"prompt_ids": torch.zeros(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1),
            "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask, **extra}


@pytest.mark.parametrize(
    "loss_type, ours_aggregation, eps_high, beta",
    [("grpo", "seq-mean-token-mean", 0.2, 0.0), ("grpo", "seq-mean-token-mean", 0.2, 0.04),
     ("dapo", "token-mean", 0.28, 0.0), ("dr_grpo", "constant", 0.2, 0.0), ("bnpo", "token-mean", 0.28, 0.04)],
)
def test_grpo_family_loss_equals_trl(loss_type, ours_aggregation, eps_high, beta):
    logp, old, ref, mask, rewards = _tensors()
    adv = grpo_advantages(rewards, G, "group")
    fake = _fake_trainer(GRPOTrainer, logp, loss_type=loss_type, epsilon_low=0.2, epsilon_high=eps_high, beta=beta)
    inputs = _inputs(mask, advantages=adv, old_per_token_logps=old, ref_per_token_logps=ref,
                     num_items_in_batch=mask.sum())
    theirs = GRPOTrainer._compute_loss(fake, None, inputs)
    ours, _ = clipped_surrogate(logp, old, adv, mask, eps_low=0.2, eps_high=eps_high, ref_logp=ref, beta=beta,
                                aggregation=ours_aggregation, max_len=MAX_LEN)
    torch.testing.assert_close(ours, theirs)


def test_rloo_loss_equals_trl():
    logp, old, _, mask, rewards = _tensors(1)
    adv = rloo_advantages(rewards, G)
    fake = _fake_trainer(RLOOTrainer, logp, epsilon_low=0.2, epsilon_high=0.2, beta=0.0)
    old_seq = (old * mask).sum(1)
    theirs = RLOOTrainer._compute_loss(fake, None, _inputs(mask, advantages=adv, old_logps=old_seq))
    ours, _ = sequence_clipped_surrogate(logp, old, adv, mask, 0.2, 0.2)
    torch.testing.assert_close(ours, theirs)
