"""N processes train as one: train-sft, train-prm, train-rl grpo (rollouts included) and oreo,
under DDP, DeepSpeed ZeRO-2 and ZeRO-3 on 2 CPU processes (gloo), give one process's losses on
the same global batch, and rank 0 alone writes the run (ZeRO-3's final/ gathered whole).

Tolerance: losses within 1e-5 relative, gradient norms within 1e-4 or 1e-5 relative (they
are logged to 4 decimals), final weights within 1e-5 absolute; measured differences are ~1e-7 (float
reassociation: the ranks' micro-batches pad differently and the all-reduce sums in another order).
"""

from __future__ import annotations

import pytest

from reasoner import api
from tests.conftest import TINY
from tests.dist.harness import metrics, run_ranks, strategy_args

pytestmark = pytest.mark.usefixtures("one_thread")

SFT = [*TINY, "model.device=cpu", "data.num_problems=32", "batch_size=4", "grad_accum=2", "optim.warmup_steps=0",
       "log_every=1", "save_every=0", "max_steps=2"]
PRM = [*TINY, "model.device=cpu", "batch_size=2", "grad_accum=3", "optim.warmup_steps=0", "log_every=1",
       "save_every=0", "max_steps=2"]
REL = 1e-5


def assert_same_run(single, multi, keys=("loss",), weight_tol=1e-5):
    a, b = metrics(single), metrics(multi)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        for key in keys:
            assert rb[key] == pytest.approx(ra[key], rel=REL), (key, ra, rb)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-5, abs=1e-4)  # logged to 4 decimals
        assert rb["lr"] == pytest.approx(ra["lr"], rel=1e-9)
    from safetensors.torch import load_file

    wa, wb = load_file(single / "final" / "model.safetensors"), load_file(multi / "final" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < weight_tol


def assert_rank0_wrote(records, run_dir):
    """Rank 0 wrote the run (metrics, final/, summary); every other rank wrote nothing under run_dir."""
    assert any(p.endswith("metrics.jsonl") for p in records[0]["written"])
    assert any("/final" in p for p in records[0]["written"])
    for rec in records[1:]:
        assert rec["written"] == [], rec["written"]
    assert records[1]["summary"] == records[0]["summary"]  # every rank returns rank 0's summary
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "final", "metrics.jsonl", "run.json",
                                                          "summary.json"]


@pytest.fixture(scope="module")
def sft_single(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sft-single")
    api.run("train-sft", [*SFT, f"run_dir={run_dir}"])
    return run_dir


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed", "zero3"])
def test_train_sft_on_two_processes_matches_one(sft_single, tmp_path, strategy):
    run_dir = tmp_path / "run"
    records = run_ranks("train-sft", [*SFT, *strategy_args(strategy, tmp_path)], run_dir, tmp_path / "ranks")
    assert_same_run(sft_single, run_dir)
    assert_rank0_wrote(records, run_dir)


def test_train_sft_under_zero3_with_deepspeeds_defaults_matches_one(tmp_path):
    """dist.zero_stage=3 with no json: DeepSpeed keeps weights under 1e5 elements whole (the
    norms) and partitions the rest (hidden 384: every projection). Weights within 2e-5 (measured
    1.04e-5: 384-wide sums reassociated across the reduce-scatter)."""
    pytest.importorskip("deepspeed")
    wide = [*(o for o in SFT if not o.startswith(("model.tiny.hidden_size=", "model.tiny.intermediate_size="))),
            "model.tiny.hidden_size=384", "model.tiny.intermediate_size=768"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    api.run("train-sft", [*wide, f"run_dir={single}"])
    records = run_ranks("train-sft", [*wide, "dist.strategy=deepspeed", "dist.zero_stage=3"], multi, tmp_path / "ranks")
    assert_same_run(single, multi, weight_tol=2e-5)
    assert_rank0_wrote(records, multi)


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed", "zero3"])
def test_train_prm_on_two_processes_matches_one(tmp_path, strategy):
    from tests.prm.gym_data import gym_trajectories, write_jsonl

    data = write_jsonl(tmp_path / "gym.jsonl", gym_trajectories(12, max_ops=3, max_operand=9))
    single, multi = tmp_path / "single", tmp_path / "multi"
    api.run("train-prm", [*PRM, f"train_file={data}", f"run_dir={single}"])
    records = run_ranks("train-prm", [*PRM, f"train_file={data}", *strategy_args(strategy, tmp_path)], multi,
                        tmp_path / "ranks")
    assert_same_run(single, multi, keys=("loss", "step_acc"))
    assert_rank0_wrote(records, multi)


@pytest.mark.parametrize("algo,strategy", [("oreo", "ddp"), ("rft", "ddp"), ("oreo", "deepspeed"), ("oreo", "zero3")])
def test_offline_rl_on_two_processes_matches_one(tmp_path, algo, strategy):
    """Each rank trains on its share of the batch; the objectives' means are over both ranks' items."""
    from tests.offline.helpers import gym_trajectories, write_trajectories

    data = write_trajectories(tmp_path / "traj.jsonl", gym_trajectories(4))
    offline = [*TINY, "model.device=cpu", "batch_size=4", "eval_problems=0", "save_every=0", f"algo={algo}",
               f"train_file={data}", "steps=2", "log_every=1"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    api.run("train-rl", [*offline, f"run_dir={single}"])
    records = run_ranks("train-rl", [*offline, *strategy_args(strategy, tmp_path)], multi, tmp_path / "ranks")
    a, b = metrics(single), metrics(multi)
    assert [r["step"] for r in a] == [r["step"] for r in b] and a
    for ra, rb in zip(a, b):
        for key in ("loss", "grad_norm", *(("value_loss", "value_grad_norm") if algo == "oreo" else ())):
            assert rb[key] == pytest.approx(ra[key], rel=REL, abs=1e-6), (key, ra, rb)  # per-rank values logged to 6 decimals
    assert records[1]["written"] == [] and records[0]["written"]


def test_deepspeed_on_one_process_without_torchrun_matches_single(sft_single, tmp_path):
    """dist.strategy=deepspeed on a plain `reasoner train-sft` (no torchrun): a process group of one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("deepspeed")
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run([sys.executable, "-m", "reasoner", "train-sft", *SFT, f"run_dir={tmp_path}",
                           "dist.strategy=deepspeed"], env={**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)},
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(sft_single, tmp_path)


RL = [*TINY, "model.device=cpu", "data.num_problems=40", "prompts_per_step=2", "generation.n=4",
      "generation.max_new_tokens=8", "generation.batch_size=16", "batch_size=4", "eval_every=0", "steps=2",
      "save_every=0", "log_every=1", "reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum"]


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed", "zero3"])
def test_train_rl_grpo_on_two_processes_matches_one(tmp_path, strategy):
    """End to end, rollouts included: with one seed per prompt (on by default under N processes)
    each rank samples its prompts exactly as one process samples them in the whole batch (under
    ZeRO-3 each rank decodes with the gathered weights, its gathering hooks off)."""
    single, multi = tmp_path / "single", tmp_path / "multi"
    api.run("train-rl", [*RL, "algo=grpo", "seed_per_prompt=true", f"run_dir={single}"])
    records = run_ranks("train-rl", [*RL, "algo=grpo", *strategy_args(strategy, tmp_path)], multi, tmp_path / "ranks")
    a, b = metrics(single), metrics(multi)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2]
    for ra, rb in zip(a, b):
        assert rb["rollouts"] == ra["rollouts"] and rb["response_len"] == pytest.approx(ra["response_len"])
        for key in ("reward", "loss"):
            assert rb[key] == pytest.approx(ra[key], rel=REL, abs=1e-6), (key, ra, rb)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], abs=1e-4)
    assert_rank0_wrote(records, multi)
