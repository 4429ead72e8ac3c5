"""RLEP's experience pool: verified-correct responses per problem, replayed beside fresh samples.

Filled from a trajectories file (a `reasoner collect` output, or the pool.jsonl an earlier
`train-rl` run wrote); sampling uses an explicit torch.Generator so a resumed run draws the same.
"""

from __future__ import annotations

import torch

from reasoner.errors import UserError


class ReplayPool:
    def __init__(self, entries: dict[str, list[str]] | None = None):
        self.entries: dict[str, list[str]] = {k: list(v) for k, v in (entries or {}).items()}

    @classmethod
    def from_file(cls, path: str) -> "ReplayPool":
        """Correct (reward >= 1) trajectories of `path`, keyed by problem id, duplicates dropped."""
        from pathlib import Path

        from reasoner.data import read_trajectories

        if not Path(path).exists():
            raise UserError(f"algo.pool_file '{path}': no such file")
        pool = cls()
        for t in read_trajectories(path):
            if t.reward >= 1.0:
                pool.add(t.problem_id, t.response)
        if not pool.entries:
            raise UserError(f"algo.pool_file '{path}': no verified-correct trajectories (reward >= 1) in it")
        return pool

    def add(self, problem_id: str, response: str) -> None:
        bucket = self.entries.setdefault(problem_id, [])
        if response not in bucket:
            bucket.append(response)

    def sample(self, problem_id: str, m: int, rng: torch.Generator) -> list[str]:
        """Up to m distinct pooled responses (fewer when the pool holds fewer: never placeholders)."""
        bucket = self.entries.get(problem_id, [])
        if not bucket or m <= 0:
            return []
        order = torch.randperm(len(bucket), generator=rng).tolist()
        return [bucket[i] for i in order[:m]]

    def __len__(self) -> int:
        return sum(len(v) for v in self.entries.values())

    def state_dict(self) -> dict:
        return {"entries": self.entries}

    def load_state_dict(self, state: dict) -> None:
        self.entries = {k: list(v) for k, v in state["entries"].items()}
