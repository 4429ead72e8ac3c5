"""eval-prm: samples + ground truth on the gym, eval files with truth or MC labels, and
one-line errors (exit 2) before any output."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY
from tests.prm.gym_data import gym_trajectories, write_jsonl


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory):
    from reasoner import config
    from reasoner.models import load_policy
    from reasoner.prm.model import PRMSpec, save_prm

    cfg = config.load("train_prm", TINY)
    model, tok = load_policy(cfg.model)
    out = tmp_path_factory.mktemp("prm") / "final"
    save_prm(model, tok, PRMSpec(step_separator="\n"), out)
    return out


def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def test_samples_policy_and_judges_against_the_checker(tmp_path, prm_dir, cli):
    run_dir = tmp_path / "run"
    code, out, err = cli("eval-prm", *TINY, f"run_dir={run_dir}", f"prm_model={prm_dir}", "data.num_problems=3",
                         "samples_per_problem=2", "generation.max_new_tokens=16")
    assert code == 0, err
    s = summary(run_dir)
    assert s["solutions"] <= 6 and s["label_source"] == "truth" and s["scorer_kind"] == "prm"
    for key in ("step_accuracy", "step_auc", "first_error_f1", "acc_erroneous", "acc_correct", "best_threshold_f1"):
        assert key in s
    assert "step_accuracy" in out  # the printed table
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all("true_step_labels" in r["meta"] for r in samples)
    assert len((run_dir / "scores.jsonl").read_text().splitlines()) == s["solutions"]


def test_eval_file_with_ground_truth(tmp_path, prm_dir, cli):
    rows = gym_trajectories(20, split="test")
    for r in rows:  # labels in the file are ignored with label_source=truth: the checker decides
        r["step_labels"] = [0.5] * len(r["steps"])
        r["meta"] = {}
    path = write_jsonl(tmp_path / "eval.jsonl", rows)
    code, _out, err = cli("eval-prm", *TINY, f"run_dir={tmp_path / 'run'}", f"prm_model={prm_dir}", f"eval_file={path}")
    assert code == 0, err
    s = summary(tmp_path / "run")
    truth = gym_trajectories(20, split="test")
    assert s["solutions"] == 20 and s["steps"] == sum(len(r["steps"]) for r in truth)
    assert s["positive_steps"] == sum(sum(r["meta"]["true_step_labels"]) for r in truth)
    assert s["erroneous"] + s["correct"] == 20


def test_eval_file_with_mc_labels(tmp_path, prm_dir, cli, shared_data):
    """GSM8K-style trajectories judged against their soft MC labels (binarised at prm.threshold)."""
    rows = [{"id": f"g{i}/0", "problem_id": f"g{i}", "prompt": "Natalia sold 48 clips in April.\n",
             "response": "48 / 2 = 24\n48 + 24 = 72\nAnswer: 72", "steps": ["48 / 2 = 24", "48 + 24 = 72", "Answer: 72"],
             "pred_answer": "72", "reward": 1.0, "step_labels": [0.75, 0.5 - 0.25 * (i % 2), 0.25 * (i % 3)], "meta": {}}
            for i in range(6)]
    path = write_jsonl(tmp_path / "gsm.jsonl", rows)
    gsm = shared_data / "gsm8k" / "test.jsonl"
    code, _out, err = cli("eval-prm", *TINY, "data=gsm8k", f"data.path={gsm}", f"run_dir={tmp_path / 'run'}",
                          f"prm_model={prm_dir}", f"eval_file={path}")
    assert code == 0, err
    s = summary(tmp_path / "run")
    assert s["label_source"] == "file" and s["solutions"] == 6 and "label_mse" in s
    assert s["positive_steps"] == sum(v >= 0.5 for r in rows for v in r["step_labels"])


def test_bad_input_exits_2_and_writes_nothing(tmp_path, prm_dir, cli, shared_data):
    run_dir = tmp_path / "run"
    gsm = shared_data / "gsm8k" / "test.jsonl"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x/0"}\n')
    cases = [
        ([f"prm_model={tmp_path / 'nope'}"], "no such directory"),
        ([f"prm_model={prm_dir}", f"eval_file={bad}"], f"{bad}:1: field"),
        ([f"prm_model={prm_dir}", "label_source=guess"], "label_source 'guess'"),
        ([f"prm_model={prm_dir}", "data=gsm8k", f"data.path={gsm}"], "needs ground-truth labels"),
        ([f"prm_model={prm_dir}", "score_threshold=2"], "score_threshold"),
    ]
    for extra, message in cases:
        code, _out, err = cli("eval-prm", *TINY, f"run_dir={run_dir}", *extra)
        assert code == 2, (extra, err)
        assert message in err and len(err.strip().splitlines()) == 1
        assert not run_dir.exists()
