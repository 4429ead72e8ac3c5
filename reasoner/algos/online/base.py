"""What an online RL algorithm is to the online recipe (`reasoner.rl.recipe.OnlineRecipe`).

The recipe samples each step's groups, rewards them, lays out the batch and its log-probs
(`UpdateInputs`) and applies the clipped policy update; an algorithm says what it trains beside
the policy (a critic, an implicit PRM), what it adds to sampling (replayed answers), and how a
rewarded batch becomes advantages (`advantages(inputs) -> Advantages`). The shared configs:
ClippedConfig (every clipped-surrogate algorithm) and GroupConfig (group baselines).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from reasoner.config import AlgoConfig
from reasoner.errors import UserError

KL_ESTIMATORS = ("k3", "full", "reward")


@dataclass
class ClippedConfig(AlgoConfig):
    """The clipped surrogate, its KL to the frozen reference, and the update's minibatches."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip: Optional[float] = None
    loss_aggregation: str = "token-mean"  # token-mean | seq-mean-token-mean | constant
    beta: float = 0.0  # KL coefficient (no reference model is loaded when 0)
    kl_estimator: str = "k3"  # k3 | full (full vocabulary) | reward (RLOO-style penalty in the reward)
    minibatch_size: Optional[int] = None  # rows per optimizer step (null: the whole batch)
    mask_truncated: bool = False  # drop completions that hit max_new_tokens from the loss


@dataclass
class GroupConfig(ClippedConfig):
    """Group-relative baselines over each prompt's samples, with DAPO's dynamic sampling."""

    num_iterations: int = 1  # optimisation passes over each rollout batch
    dynamic_sampling: bool = False  # DAPO: drop groups whose rewards are all equal, sample more prompts
    max_sampling_rounds: int = 3  # dynamic sampling: generation rounds per step at most


@dataclass
class UpdateInputs:
    """One step's rewarded rollouts, laid out for the update (rows of a group contiguous)."""

    batch: object  # rl.batch.RolloutBatch
    mask: torch.Tensor  # [B, T] response tokens the loss sees (truncated ones off with mask_truncated)
    outcome: torch.Tensor  # [B] sequence rewards
    sizes: list[int]  # group sizes
    correct: list[bool]  # the verifier's verdicts
    old_logp: torch.Tensor | None  # [B, T] behaviour log-probs when a pass was needed (else the first pass's)
    ref_logp: torch.Tensor | None  # [B, T] reference log-probs (beta != 0 and not the full-vocabulary KL)
    dense: tuple[torch.Tensor, torch.Tensor] | None  # dense PRM rewards on step-end tokens, and that mask
    kl_reward: bool  # the KL enters as a reward penalty
    micro: int  # rows per forward pass

    def take_groups(self, groups: list[int]) -> "UpdateInputs":
        """The inputs of the given groups only (PRIME's accuracy filter)."""
        bounds = [sum(self.sizes[:g]) for g in range(len(self.sizes) + 1)]
        rows = torch.cat([torch.arange(bounds[g], bounds[g + 1]) for g in groups]).to(self.mask.device)
        pick = [i for g in groups for i in range(bounds[g], bounds[g + 1])]
        return UpdateInputs(self.batch.rows(rows), self.mask[rows], self.outcome[rows], [self.sizes[g] for g in groups],
                            [self.correct[i] for i in pick],
                            None if self.old_logp is None else self.old_logp[rows],
                            None if self.ref_logp is None else self.ref_logp[rows],
                            None if self.dense is None else (self.dense[0][rows], self.dense[1][rows]),
                            self.kl_reward, self.micro)


@dataclass
class Advantages:
    """What the policy update trains on: advantages for `inputs` (None: skip the update)."""

    values: torch.Tensor | None
    inputs: UpdateInputs
    metrics: dict = field(default_factory=dict)
    critic: dict = field(default_factory=dict)  # policy_update's critic arguments (PPO)


class OnlineAlgorithm:
    """Base of the online algorithms. One instance per run: `__init__` takes the run's config
    (and may read files: a bad one fails before a model loads), `setup` builds its models."""

    name = "online"
    kind = "online"
    Config: type = ClippedConfig
    importance_level = "token"  # the POLICY_LOSSES entry the update uses
    pool = None  # a replay pool sampled beside fresh completions (RLEP)
    replay = 0  # pooled answers per group

    def __init__(self, run_cfg):
        self.run_cfg, self.cfg = run_cfg, run_cfg.algo

    # ------------------------------------------------------------------ config

    @classmethod
    def validate(cls, run_cfg) -> None:
        """Checks of the algorithm's config that need no model (UserError, one line)."""
        from reasoner.algos import AGGREGATIONS

        a = run_cfg.algo
        if a.loss_aggregation not in AGGREGATIONS:
            raise UserError(f"config: algo.loss_aggregation must be one of {', '.join(AGGREGATIONS)}, got '{a.loss_aggregation}'")
        if a.kl_estimator not in KL_ESTIMATORS:
            raise UserError(f"config: algo.kl_estimator must be k3, full or reward, got '{a.kl_estimator}'")
        if a.eps_low < 0 or a.eps_high < 0 or (a.dual_clip is not None and a.dual_clip <= 1):
            raise UserError("config: algo.eps_low/eps_high must be >= 0 and algo.dual_clip > 1 (or null)")
        if a.minibatch_size is not None and a.minibatch_size < 1:
            raise UserError("config: algo.minibatch_size must be >= 1 (or null)")
        if cls.epochs_of(a) < 1:
            raise UserError(f"config: algo.{cls.epochs_key} must be >= 1")

    epochs_key = "num_iterations"

    @classmethod
    def epochs_of(cls, algo_cfg) -> int:
        """Optimisation passes over each rollout batch."""
        return getattr(algo_cfg, cls.epochs_key)

    @property
    def epochs(self) -> int:
        return self.epochs_of(self.cfg)

    @property
    def group_extra(self) -> int:
        """Samples per group beyond generation.n (RLEP's replayed answers)."""
        return 0

    @property
    def dynamic_sampling(self) -> bool:
        return bool(getattr(self.cfg, "dynamic_sampling", False))

    def needs_reference(self) -> bool:
        return self.cfg.beta != 0.0

    # ------------------------------------------------------------------ models and state

    def setup(self, recipe) -> None:
        """Build what the algorithm trains beside the policy (recipe: model, tokenizer, reference, cfg)."""

    def models(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def on_rollouts(self, samples, correct_records: list[dict]) -> dict:
        """Called with each step's samples and its verified-correct records; returns metrics."""
        return {}

    def advantages(self, inputs: UpdateInputs) -> Advantages:
        raise NotImplementedError

    def save_final(self, out_dir, recipe) -> dict:
        """Write what the algorithm trained beside the policy; its summary fields."""
        return {}


class GroupAlgorithm(OnlineAlgorithm):
    """Group baselines (ADVANTAGES[estimator]) on the outcome, KL as a reward penalty when asked,
    DeepSeekMath process-supervision advantages on top for dense PRM rewards."""

    Config = GroupConfig
    estimator = "grpo"

    @classmethod
    def validate(cls, run_cfg) -> None:
        super().validate(run_cfg)
        if run_cfg.algo.max_sampling_rounds < 1:
            raise UserError(f"config: algo.max_sampling_rounds must be >= 1, got {run_cfg.algo.max_sampling_rounds}")

    def scale_rewards(self) -> str:
        return getattr(self.cfg, "scale_rewards", "group")

    def advantages(self, inputs: UpdateInputs) -> Advantages:
        from reasoner.algos import ADVANTAGES, kl_penalized_rewards, process_advantages

        r = inputs.outcome
        if inputs.kl_reward:
            r = kl_penalized_rewards(inputs.outcome, inputs.old_logp, inputs.ref_logp, inputs.mask, self.cfg.beta)
        adv = self.post_process(ADVANTAGES[self.estimator](r, inputs.sizes, self.scale_rewards()))
        if inputs.dense is not None:
            adv = adv.unsqueeze(1) + process_advantages(inputs.dense[0], inputs.dense[1], inputs.sizes)
        return Advantages(adv, inputs)

    def post_process(self, advantages: torch.Tensor) -> torch.Tensor:
        return advantages
