"""RLEP pool: correct trajectories only, deterministic draws, never padded with placeholders."""

from __future__ import annotations

import json

import pytest
import torch

from reasoner.errors import UserError
from reasoner.rl.pool import ReplayPool


def _traj(pid, resp, reward, k):
    return {"id": f"{pid}/{k}", "problem_id": pid, "prompt": "q", "response": resp, "steps": [resp],
            "pred_answer": None, "reward": reward}


def test_from_file_keeps_correct_dedups_and_samples_deterministically(tmp_path):
    f = tmp_path / "pool.jsonl"
    rows = [_traj("a", "r1", 1.0, 0), _traj("a", "r1", 1.0, 1), _traj("a", "r2", 1.0, 2), _traj("a", "bad", 0.0, 3), _traj("b", "s", 1.0, 0)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = ReplayPool.from_file(str(f))
    assert pool.entries == {"a": ["r1", "r2"], "b": ["s"]} and len(pool) == 3
    draw = lambda: pool.sample("a", 2, torch.Generator().manual_seed(3))  # noqa: E731
    assert sorted(draw()) == ["r1", "r2"] and draw() == draw()
    assert pool.sample("b", 2, torch.Generator()) == ["s"]  # fewer than M: no placeholder
    assert pool.sample("zzz", 2, torch.Generator()) == []
    other = ReplayPool()
    other.load_state_dict(pool.state_dict())
    assert other.entries == pool.entries


def test_missing_or_empty_pool_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        ReplayPool.from_file(str(tmp_path / "none.jsonl"))
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps(_traj("a", "x", 0.0, 0)) + "\n")
    with pytest.raises(UserError, match="no verified-correct"):
        ReplayPool.from_file(str(f))
