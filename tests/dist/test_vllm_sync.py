"""Online GRPO on vLLM under `reasoner launch --nproc 2` (the vLLM lane: `bash scripts/vllm_lane.sh`;
skipped where vllm is not importable): one engine, started by rank 0, generates every rank's
prompts and is fed the trained weights after each update. The run matches one process on vLLM
with the same per-prompt seeds at a learning rate large enough that an engine left on the old
weights samples otherwise (switching the sync off fails this test at step 2)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reasoner import api
from tests.dist.harness import metrics
from tests.dist.test_equivalence import RL

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (run scripts/vllm_lane.sh)"),
    pytest.mark.usefixtures("one_thread"),
]

REPO = Path(__file__).resolve().parents[2]
# vLLM's CPU attention needs a head size of 32/64/80/...: the tiny model at hidden 64, 2 heads
VLLM = [*(o for o in RL if not o.startswith("model.tiny.hidden_size=")), "model.tiny.hidden_size=64", "algo=grpo",
        "steps=3", "optim.lr=1e-2", "generation.backend=vllm", "generation.vllm.enforce_eager=true",
        "generation.vllm.dtype=float32"]


def test_grpo_on_vllm_with_weight_sync_under_the_launcher_matches_one_process(tmp_path):
    from safetensors.torch import load_file

    single, multi = tmp_path / "single", tmp_path / "multi"
    api.run("train-rl", [*VLLM, "seed_per_prompt=true", f"run_dir={single}"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "reasoner", "launch", "--nproc", "2", "train-rl", *VLLM,
                           f"run_dir={multi}"], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "2 processes" in done.stderr
    a, b = metrics(single), metrics(multi)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert rb["rollouts"] == ra["rollouts"] and rb["response_len"] == pytest.approx(ra["response_len"])
        for key in ("reward", "loss"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-5), (key, ra, rb)
    final, again = load_file(multi / "final" / "model.safetensors"), load_file(single / "final" / "model.safetensors")
    assert max(float((final[k] - again[k]).abs().max()) for k in final) < 1e-4
    assert sorted(p.name for p in multi.iterdir()) == sorted(p.name for p in single.iterdir())
