"""train-prm: learns held-out step labels, every head/kind/data format runs and reloads as a
scorer, resume is exact, and bad input stops with one line (exit 2) before any output."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from reasoner import config
from reasoner.config import ScorerConfig
from reasoner.scoring import load_scorer
from reasoner.prm import train as prm_recipe
from reasoner.stages import train_prm
from tests.conftest import TINY
from tests.prm.gym_data import gym_trajectories, parity_trajectories, write_jsonl


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("prm-data")
    return {
        "gym": write_jsonl(root / "gym.jsonl", gym_trajectories(24, max_ops=3, max_operand=9)),
        "parity_train": write_jsonl(root / "par_train.jsonl", parity_trajectories(300, seed=0)),
        "parity_test": write_jsonl(root / "par_test.jsonl", parity_trajectories(60, seed=1)),
        "root": root,
    }


def prm_cfg(run_dir, train_file, *extra):
    return config.load("train_prm", TINY + [
        f"run_dir={run_dir}", f"train_file={train_file}", "batch_size=8", "log_every=1",
        "optim.warmup_steps=2", *extra])


def test_training_improves_held_out_step_accuracy(tmp_path, files):
    from reasoner.models import load_policy
    from reasoner.prm.evaluate import evaluate, reference_labels
    from reasoner.prm.examples import read_examples
    from reasoner.prm.model import PRMSpec
    from reasoner.scoring import DiscriminativeScorer
    from reasoner.tasks import get_task

    cfg = prm_cfg(tmp_path, files["parity_train"], f"eval_file={files['parity_test']}", "max_steps=40",
                  "batch_size=16", "optim.lr=1e-2", "optim.warmup_steps=5")
    model, tok = load_policy(cfg.model)  # the same seeded init train-prm starts from
    examples = read_examples(str(files["parity_test"]))
    kept, hard, soft = reference_labels(examples, get_task("arith"), "file")
    before, _ = evaluate(DiscriminativeScorer(model, tok, PRMSpec(step_separator="\n")), kept, hard, soft)
    train_prm.run(cfg)
    after = json.loads((tmp_path / "summary.json").read_text())["eval"]
    assert after["step_accuracy"] >= 0.9 > before["step_accuracy"] + 0.2
    assert after["step_auc"] >= 0.95
    scorer = load_scorer(ScorerConfig(kind="prm", path=str(tmp_path / "final")), device="cpu")
    reread, _ = evaluate(scorer, kept, hard, soft)
    assert reread["step_accuracy"] == pytest.approx(after["step_accuracy"])  # the saved PRM is the trained one


@pytest.mark.parametrize("extra", [
    ["prm.label_type=soft"],
    ["prm.head=scalar", "model.lora.enabled=true", "model.lora.r=4"],
    ["prm=implicit", "prm.beta=0.5"],
    ["prm=implicit", "model.lora.enabled=true", "model.lora.r=4"],
])
def test_every_kind_trains_saves_and_loads(tmp_path, files, extra):
    train_prm.run(prm_cfg(tmp_path, files["gym"], "max_steps=2", *extra))
    final = tmp_path / "final"
    spec = json.loads((final / "prm.json").read_text())
    kind = "implicit" if spec["kind"] == "implicit" else "prm"
    if kind == "implicit":
        assert (final / "reference" / "config.json").is_file()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
    scores = load_scorer(ScorerConfig(kind=kind, path=str(final)), device="cpu").score(
        ["Compute: 1 + 2\n"], [["1 + 2 = 3", "Answer: 3"]])
    assert len(scores[0]) == 2 and all(0 <= s <= 1 for s in scores[0])


def test_trl_format_and_unlabelled_steps(tmp_path, files):
    """TRL PRM rows train like trajectories; steps labelled null are skipped, not trained as 0."""
    trl = write_jsonl(tmp_path / "trl.jsonl", [
        {"prompt": "Compute: 1 + 2\n", "completions": ["1 + 2 = 3", "Answer: 3"], "labels": [True, True]},
        {"prompt": "Compute: 2 + 2\n", "completions": ["2 + 2 = 5", "Answer: 5"], "labels": [0.0, 0.0]},
    ])
    rows = gym_trajectories(4)
    rows[0]["step_labels"] = [None] * len(rows[0]["steps"])
    rows[1]["step_labels"][0] = None
    traj = write_jsonl(tmp_path / "traj.jsonl", rows)
    train_prm.run(prm_cfg(tmp_path / "a", trl, "max_steps=1"))
    assert (tmp_path / "a" / "final" / "prm.json").is_file()
    train_prm.run(prm_cfg(tmp_path / "b", traj, "max_steps=1"))
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    expected = sum(len(r["steps"]) for r in rows) - len(rows[0]["steps"]) - 1
    assert summary["examples"] == 3 and summary["trained_targets"] == expected


def test_resumes_exactly_after_a_crash(tmp_path, files, monkeypatch):
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    train_prm.run(prm_cfg(whole, files["gym"], "max_steps=4", "save_every=2", "batch_size=4"))
    real = prm_recipe.batch_loss
    calls = {"n": 0}

    def crash_on_third_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(prm_recipe, "batch_loss", crash_on_third_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_prm.run(prm_cfg(crashed, files["gym"], "max_steps=4", "save_every=2", "batch_size=4"))
    monkeypatch.setattr(prm_recipe, "batch_loss", real)
    train_prm.run(prm_cfg(crashed, files["gym"], "max_steps=4", "save_every=2", "batch_size=4"))

    def losses(d):
        return [json.loads(line)["loss"] for line in (d / "metrics.jsonl").read_text().splitlines()]

    assert losses(crashed) == pytest.approx(losses(whole), rel=1e-5)
    a, b = load_file(str(whole / "final" / "model.safetensors")), load_file(str(crashed / "final" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_bad_input_exits_2_and_writes_nothing(tmp_path, files, cli):
    run_dir = tmp_path / "run"
    bad = tmp_path / "bad.jsonl"
    good = json.dumps(gym_trajectories(1)[0])
    broken = json.loads(good)
    broken["step_labels"] = [1.0]  # wrong length
    bad.write_text(good + "\n" + json.dumps(broken) + "\n")
    cases = [
        ([], "train_file is required"),
        ([f"train_file={tmp_path / 'missing.jsonl'}"], "no such file"),
        ([f"train_file={bad}"], f"{bad}:2: field 'step_labels'"),
        ([f"train_file={files['gym']}", f"eval_file={bad}"], f"{bad}:2: field 'step_labels'"),
        ([f"train_file={files['gym']}", "prm.label_type=fuzzy"], "prm.label_type 'fuzzy'"),
        ([f"train_file={files['gym']}", "prm.positive_token=++"], "prm.positive_token '++' is 2 tokens"),
    ]
    for extra, message in cases:
        code, _out, err = cli("train-prm", *TINY, f"run_dir={run_dir}", *extra)
        assert code == 2, (extra, err)
        assert message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert not run_dir.exists()
    unlabelled = write_jsonl(tmp_path / "unlabelled.jsonl", [{**gym_trajectories(1)[0], "step_labels": None}])
    code, _out, err = cli("train-prm", *TINY, f"run_dir={run_dir}", f"train_file={unlabelled}")
    assert code == 2 and "no step labels" in err and not run_dir.exists()
