"""Online GRPO on vLLM under 2 processes (the vLLM lane: `bash scripts/vllm_lane.sh`; skipped
where vllm is not importable): one engine on rank 0 generates every rank's prompts and is fed
the trained weights after each update; the run matches one process on vLLM with the same
per-prompt seeds, so step 2's samples came from the synced weights."""

from __future__ import annotations

import importlib.util

import pytest

from reasoner import api
from tests.dist.harness import metrics, run_ranks
from tests.dist.test_equivalence import RL

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (run scripts/vllm_lane.sh)"),
    pytest.mark.usefixtures("one_thread"),
]

# vLLM's CPU attention needs a head size of 32/64/80/...: the tiny model at hidden 64, 2 heads
VLLM = [*(o for o in RL if not o.startswith("model.tiny.hidden_size=")), "model.tiny.hidden_size=64", "algo=grpo",
        "steps=3", "optim.lr=1e-2", "generation.backend=vllm", "generation.vllm.enforce_eager=true",
        "generation.vllm.dtype=float32"]  # a large lr: an engine left on the old weights would sample otherwise


def test_grpo_on_vllm_with_weight_sync_on_two_processes_matches_one(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    api.run("train-rl", [*VLLM, "seed_per_prompt=true", f"run_dir={single}"])
    records = run_ranks("train-rl", [*VLLM, "dist.strategy=ddp"], multi, tmp_path / "ranks")
    a, b = metrics(single), metrics(multi)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert rb["rollouts"] == ra["rollouts"] and rb["response_len"] == pytest.approx(ra["response_len"])
        for key in ("reward", "loss"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-5), (key, ra, rb)
    assert records[1]["written"] == [] and records[0]["written"]
    from safetensors.torch import load_file

    final = load_file(multi / "final" / "model.safetensors")
    again = load_file(single / "final" / "model.safetensors")
    assert max(float((final[k] - again[k]).abs().max()) for k in final) < 1e-4
