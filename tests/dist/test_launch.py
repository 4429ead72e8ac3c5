"""`reasoner launch`: the torchrun command line it runs, and bad input as one line + exit 2
before any process starts."""

from __future__ import annotations

import sys

import pytest

from reasoner import api
from reasoner.errors import UserError


def test_one_node_runs_torchrun_standalone_with_ddp_by_default(cli):
    code, out, _ = cli("launch", "--nproc", "4", "--show", "train-sft", "max_steps=10")
    assert code == 0
    assert out.split() == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                           "-m", "reasoner", "train-sft", "max_steps=10", "dist.strategy=ddp"]


def test_the_users_strategy_is_kept_and_several_nodes_meet_at_the_rendezvous(cli):
    code, out, _ = cli("launch", "--nproc", "8", "--nnodes", "2", "--rdzv", "node0:29500", "--show", "train-rl",
                       "algo=grpo", "dist.strategy=deepspeed")
    assert code == 0
    words = out.split()
    assert words[3:13] == ["--nnodes", "2", "--nproc_per_node", "8", "--rdzv_backend", "c10d", "--rdzv_endpoint",
                           "node0:29500", "--rdzv_id", "reasoner"]
    assert words[-3:] == ["train-rl", "algo=grpo", "dist.strategy=deepspeed"]


@pytest.mark.parametrize("args,message", [
    (["--nproc", "2", "decode"], "'decode' is not a training command"),
    (["--nproc", "0", "train-sft"], "--nproc and --nnodes must be >= 1"),
    (["--nproc", "2", "--nnodes", "2", "train-sft"], "--nnodes > 1 needs --rdzv HOST:PORT"),
    (["--nproc", "2", "--rdzv", "node0", "train-sft"], "--rdzv 'node0' must look like HOST:PORT"),
    (["--nproc", "2", "train-sft", "dist.strategy=dpp"], "dist.strategy 'dpp' is not one of single, ddp, deepspeed"),
    (["--nproc", "2", "train-sft", "dist.zero_stage=4", "dist.strategy=deepspeed"],
     "dist.zero_stage=4 is not a ZeRO stage (1, 2 or 3)"),
    (["--nproc", "2", "train-sft", "dist.stratgy=ddp"], "unknown key 'dist.stratgy' (did you mean 'dist.strategy'?)"),
    (["--nproc", "2", "train-rl", "prompts_per_step=3"], "prompts_per_step=3 must be a multiple of the 2 processes"),
    (["--nproc", "2", "--nnodes", "2", "--rdzv", "n0:1", "train-rl", "prompts_per_step=6"], "multiple of the 4 processes"),
    (["--nproc", "2", "train-rl", "algo=oreo"], "offline RL on 2 processes needs train_file= and rounds=1"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args, message):
    code, _, err = cli("launch", *args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err


def test_a_deepspeed_json_must_be_zero_1_2_or_3(tmp_path):
    bad = tmp_path / "ds.json"
    bad.write_text('{"zero_optimization": {"stage": 4}}')
    with pytest.raises(UserError, match="zero_optimization.stage must be 1, 2 or 3"):
        api.load_config("train-sft", ["dist.strategy=deepspeed", f"dist.deepspeed_config={bad}"])
    with pytest.raises(UserError, match="dist.deepspeed_config '.*missing.json'"):
        api.load_config("train-sft", ["dist.strategy=deepspeed", f"dist.deepspeed_config={tmp_path}/missing.json"])


@pytest.mark.parametrize("command,extra,message", [
    ("train-sft", ["dist.strategy=single"], "dist.strategy=single under 2 processes"),
    ("decode", [], "decode runs on one process"),
])
def test_under_torchrun_a_single_strategy_or_a_non_training_command_stops(monkeypatch, tmp_path, command, extra,
                                                                         message):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match=message):
        api.run(command, [*extra, f"run_dir={tmp_path}"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(300)
def test_bad_input_found_on_the_ranks_still_exits_2(tmp_path):
    """A missing model is found when the ranks load it, after torchrun started them: torchrun
    itself reports any failed rank as 1, launch turns the ranks' bad-input stop into 2."""
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "reasoner", "launch", "--nproc", "2", "train-sft",
                           f"model.name_or_path={tmp_path / 'no-such-model'}", f"run_dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, env=env, timeout=280)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no-such-model" in done.stderr
    assert not (tmp_path / "run").exists()
