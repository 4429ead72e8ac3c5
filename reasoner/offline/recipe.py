"""One round of offline RL as a recipe (`reasoner train-rl algo=oreo|rft|dpo`, ALGORITHMS.md §6).

The round's policy starts from `model_cfg` (round k > 1: round k-1's), the value model (OREO)
from `value_cfg`; trajectories are tokenised piece by piece as the value scorer reads them
(`offline.data`), the algorithm (`algos/offline`, from the registry) picks the items an epoch
walks and does one update per batch. Outputs under the round's directory: final/ (LoRA merged;
adapter/ too with LoRA), the algorithm's extras (OREO: value/), and the held-out greedy
accuracy in summary.json.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reasoner.train.recipe import EpochBatches, RecipeBase, Step, pad_id


def round_steps(cfg, batches: EpochBatches) -> int:
    """ceil(epochs * steps per epoch), capped at `steps` when steps > 0."""
    total = batches.total(cfg.epochs)
    return min(total, cfg.steps) if cfg.steps > 0 else total


class OfflineRecipe(RecipeBase):
    eval_at_end = False  # save_final reports the round's held-out accuracy

    def __init__(self, cfg, model_cfg, value_cfg, trajs, separator: str, label: str = ""):
        from reasoner.algos.registry import get_algorithm
        from reasoner.models import load_policy
        from reasoner.offline.data import encode_trajectory

        self.cfg, self.model_cfg, self.value_cfg, self.label, self.trajectories = cfg, model_cfg, value_cfg, label, len(trajs)
        self.algorithm = get_algorithm(cfg.algo.name)(cfg)
        self.name = f"train-rl {cfg.algo.name}" + (f" {label}" if label else "")
        torch.manual_seed(cfg.seed)
        self.policy, self.tokenizer = load_policy(model_cfg)
        seqs = [encode_trajectory(self.tokenizer, t, separator, cfg.max_length) for t in trajs]
        self.items = self.algorithm.select(seqs)
        self.batches = EpochBatches(len(self.items), cfg.batch_size, cfg.seed, full=False)
        self.total_steps = round_steps(cfg, self.batches)

    def setup(self, out_dir: Path) -> None:
        self.algorithm.setup(self.policy, self.model_cfg, self.value_cfg, pad_id(self.tokenizer), self.total_steps)
        for model in self.algorithm.models.values():
            model.train()

    def describe(self) -> str:
        return (f"{self.name}: {len(self.items)} items from {self.trajectories} trajectories, "
                f"{self.total_steps} steps of {self.cfg.batch_size}")

    def models(self) -> dict:
        return self.algorithm.models

    def state_dict(self) -> dict:
        return self.algorithm.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.algorithm.load_state_dict(state)

    def train_step(self, step: int) -> Step:
        """This rank's share of the step's batch (all of it on one process); the objectives'
        means are over every rank's batch (`dist.batch_mean`), and the ranks' gradients averaged."""
        from reasoner.dist import shard

        batch = shard([self.items[i] for i in self.batches.indices(step)], never_empty=True)
        metrics = self.algorithm.update(batch)
        tokens = sum(len(s.input_ids) for b in batch for s in (b if isinstance(b, tuple) else (b,)))
        rounded = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
        return Step({"epoch": self.batches.epoch(step + 1), **rounded}, tokens)

    def evaluate(self) -> float:
        from reasoner.evaluation import held_out_accuracy

        return held_out_accuracy(self.policy, self.tokenizer, self.cfg.data, self.model_cfg, self.cfg.eval_problems,
                                 max_new_tokens=self.cfg.generation.max_new_tokens, split=self.cfg.eval_split)

    def save_final(self, out_dir: Path, last_eval: float | None) -> dict:
        from reasoner.models import is_peft, save_model

        self.policy.eval()
        final_dir = save_model(self.policy, self.tokenizer, out_dir / "final", merge_lora=True)
        if is_peft(self.policy):
            save_model(self.policy, self.tokenizer, out_dir / "adapter")
        summary = {"round": self.label or None, "algo": self.cfg.algo.name, "steps": self.total_steps,
                   "items": len(self.items), "trajectories": self.trajectories, "model_dir": str(final_dir)}
        summary.update(self.algorithm.save_final(out_dir, self.tokenizer))
        if self.cfg.eval_problems:
            summary["eval_accuracy"] = self.evaluate()
            summary["eval_problems"] = self.cfg.eval_problems
        return summary
