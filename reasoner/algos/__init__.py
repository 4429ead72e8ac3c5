"""Pure tensor functions for RL: advantages, returns, policy/value/OREO/DPO losses, KL estimators.

No config objects, no I/O, no models: each takes tensors and numbers and returns tensors
(losses return (loss, metrics)). The algorithms built on them (algos/online, algos/offline,
registered in algos/registry.py) pick group estimators from ADVANTAGES and the clipped surrogate
of their importance level from POLICY_LOSSES.
"""

from reasoner.algos.advantages import gae, grpo_advantages, normalize, prime_advantages, rloo_advantages
from reasoner.algos.dpo import dpo_loss
from reasoner.algos.groups import ADVANTAGES, process_advantages, ragged_group_advantages
from reasoner.algos.kl import full_vocab_kl, k3
from reasoner.algos.logprobs import entropy_from_logits, token_logprobs
from reasoner.algos.oreo import oreo_policy_loss, oreo_value_loss, step_sums
from reasoner.algos.policy_loss import (
    AGGREGATIONS, POLICY_LOSSES, aggregate, clipped_surrogate, clipped_value_loss, kl_penalized_rewards,
    sequence_clipped_surrogate,
)

__all__ = [
    "ADVANTAGES", "AGGREGATIONS", "POLICY_LOSSES", "aggregate", "clipped_surrogate", "clipped_value_loss",
    "dpo_loss", "entropy_from_logits", "full_vocab_kl", "gae", "grpo_advantages", "k3", "kl_penalized_rewards", "normalize",
    "sequence_clipped_surrogate", "oreo_policy_loss", "oreo_value_loss",
    "prime_advantages", "process_advantages", "ragged_group_advantages", "rloo_advantages", "step_sums", "token_logprobs",
]
