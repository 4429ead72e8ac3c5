"""`reasoner train-rl algo=oreo|rft|dpo` end to end on a very small tiny-arith model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.conftest import TINY
from tests.offline.helpers import gym_trajectories, write_trajectories

pytestmark = pytest.mark.usefixtures("one_thread")

COMMON = [*TINY, "model.device=cpu", "batch_size=4", "eval_problems=4", "generation.max_new_tokens=24", "save_every=0"]


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_trajectories(tmp_path_factory.mktemp("data") / "traj.jsonl", gym_trajectories(4))


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_oreo_step_level_writes_policy_value_metrics_and_the_value_scores(cli, tmp_path, train_file):
    from reasoner.config import ScorerConfig
    from reasoner.scoring import load_scorer

    run = tmp_path / "oreo"
    code, out, err = cli("train-rl", "algo=oreo", "algo.level=step", f"train_file={train_file}", f"run_dir={run}", *COMMON)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["algo"] == "oreo" and 0.0 <= summary["eval_accuracy"] <= 1.0
    recs = lines(run / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2]
    assert {"value_loss", "policy_loss", "kl", "grad_norm", "value_grad_norm"} <= set(recs[0])
    assert (run / "final" / "config.json").is_file()
    # the value model plugs into search as scorer kind=value
    scorer = load_scorer(ScorerConfig(kind="value", path=str(run / "value")), "cpu")
    scores = scorer.score(["Compute: 1 + 2"], [["1 + 2 = 3", "Answer: 3"]])
    assert len(scores[0]) == 2 and all(0.0 <= s <= 1.0 for s in scores[0])


@pytest.mark.parametrize("algo,key", [("rft", "sft_loss"), ("dpo", "dpo_loss")])
def test_baselines(cli, tmp_path, train_file, algo, key):
    run = tmp_path / algo
    code, out, err = cli("train-rl", f"algo={algo}", f"train_file={train_file}", f"run_dir={run}", *COMMON)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["items"] == 4 and summary["steps"] == 1  # 4 correct samples / 4 pairs, batch 4
    assert key in lines(run / "metrics.jsonl")[0]
    assert not (run / "value").exists()


def test_resume_is_exact(cli, tmp_path, train_file):
    """A run stopped after its step-2 checkpoint and restarted ends with the same weights."""
    from safetensors.torch import load_file

    args = ["algo=oreo", "algo.kl_estimator=k3", f"train_file={train_file}", "batch_size=2", "steps=4",
            "eval_problems=0", *TINY, "model.device=cpu", "save_every=2"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli("train-rl", *args, f"run_dir={a}")[0] == 0
    assert cli("train-rl", *args, f"run_dir={b}")[0] == 0
    # simulate a crash after step 2 in b: drop what came after the checkpoint, then rerun
    for name in ("final", "value"):
        shutil.rmtree(b / name)
    (b / "summary.json").unlink()
    assert [p.name for p in (b / "checkpoints").iterdir()] == ["step-2"]
    code, out, err = cli("train-rl", *args, f"run_dir={b}")
    assert code == 0, err
    assert [r["step"] for r in lines(b / "metrics.jsonl")] == [1, 2, 3, 4]
    for name in ("final/model.safetensors", "value/model.safetensors", "value/value_head.safetensors"):
        wa, wb = load_file(str(a / name)), load_file(str(b / name))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name


def test_bad_reward_and_bad_level_exit_2_without_output(cli, tmp_path, train_file):
    bad = tmp_path / "bad.jsonl"
    rows = train_file.read_text().splitlines()
    row = json.loads(rows[1])
    row["reward"] = 0.5
    bad.write_text(rows[0] + "\n" + json.dumps(row) + "\n")
    run = tmp_path / "run"
    code, out, err = cli("train-rl", "algo=oreo", f"train_file={bad}", f"run_dir={run}", *COMMON)
    assert code == 2 and "bad.jsonl:2: field 'reward'" in err and not run.exists()
    code, out, err = cli("train-rl", "algo=oreo", "algo.level=sentence", f"train_file={train_file}", f"run_dir={run}", *COMMON)
    assert code == 2 and "algo.level" in err and not run.exists()
    code, out, err = cli("train-rl", "algo=oreo", "model.quantization=4bit", f"train_file={train_file}", f"run_dir={run}", *COMMON)
    assert code == 2 and "model.lora.enabled=true" in err and not run.exists()
    code, out, err = cli("train-rl", "algo=rft", f"train_file={tmp_path / 'missing.jsonl'}", f"run_dir={run}", *COMMON)
    assert code == 2 and "missing.jsonl" in err and not run.exists()


def test_iterative_rounds_collect_with_the_new_policy(cli, tmp_path, train_file):
    run = tmp_path / "iter"
    code, out, err = cli("train-rl", "algo=oreo", "rounds=2", f"train_file={train_file}", f"run_dir={run}", *COMMON,
                         "data.num_problems=3", "generation.n=2", "generation.max_new_tokens=12")
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["eval_accuracy_per_round"]) == 2
    assert (run / "round-2" / "collect" / "trajectories.jsonl").is_file()
    for d in ("round-1/final", "round-1/value", "round-2/final", "round-2/value", "final", "value"):
        assert (run / d).is_dir(), d
    assert summary["rounds"][1]["trajectories"] > 0
