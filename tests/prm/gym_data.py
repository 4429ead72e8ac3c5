"""Labelled PRM training files for tests, built without any model."""

from __future__ import annotations

import json
import random
from pathlib import Path

from reasoner.tasks.arith import check_steps, corrupt_solution, generate_problems


def gym_trajectories(n: int, split: str = "train", seed: int = 0, corrupt: float = 0.5, **knobs) -> list[dict]:
    """Gold or corrupted gym solutions as Trajectory dicts with ground-truth step labels."""
    rng = random.Random(seed)
    rows = []
    for p in generate_problems(n, seed=seed, split=split, **knobs):
        steps = corrupt_solution(p, rng)[0] if rng.random() < corrupt else list(p.solution_steps)
        truth = check_steps(p, steps)
        rows.append({"id": f"{p.id}/0", "problem_id": p.id, "prompt": p.prompt + "\n", "response": "\n".join(steps),
                     "steps": steps, "pred_answer": steps[-1].split(":")[-1].strip(), "reward": float(all(truth)),
                     "step_labels": [float(v) for v in truth], "meta": {"true_step_labels": truth}})
    return rows


def parity_trajectories(n: int, seed: int = 0) -> list[dict]:
    """A label rule a 2-layer model learns in seconds: a step 'k: d' is right iff d is even."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        steps = [f"{k}: {rng.randint(0, 9)}" for k in range(1, rng.randint(2, 4) + 1)]
        labels = [float(int(s[-1]) % 2 == 0) for s in steps]
        rows.append({"id": f"p{seed}-{i}/0", "problem_id": f"p{seed}-{i}", "prompt": f"Check {i}:\n",
                     "response": "\n".join(steps), "steps": steps, "pred_answer": None,
                     "reward": float(all(labels)), "step_labels": labels, "meta": {}})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
