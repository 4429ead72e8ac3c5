"""A small offline-RL data set from the gym: gold solutions (reward 1) and corrupted ones (reward 0)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from reasoner.data import Trajectory
from reasoner.tasks import arith, get_task


def gym_trajectories(num_problems: int = 6, seed: int = 0) -> list[Trajectory]:
    task = get_task("arith")
    rng = random.Random(seed)
    out = []
    for p in arith.generate_problems(num_problems, seed=seed, split="train"):
        good = task.format_solution(p)
        bad_steps, _ = arith.corrupt_solution(p, rng)
        bad = "\n".join(bad_steps)
        for i, (resp, r) in enumerate([(good, 1.0), (bad, 0.0)]):
            out.append(Trajectory(id=f"{p.id}/{i}", problem_id=p.id, prompt=p.prompt, response=resp,
                                  steps=task.split_steps(resp), pred_answer=None, reward=r,
                                  meta={"finish_reason": "stop"}))
    return out


def write_trajectories(path: Path, trajs) -> Path:
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in trajs), encoding="utf-8")
    return path
