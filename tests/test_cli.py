"""CLI surface: instant help, dry-run, path-style model/data overrides, errors exit 2 in one line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from reasoner.cli import normalize_overrides


def test_help_is_fast_and_imports_no_torch():
    code = "import sys, reasoner.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    start = time.time()
    subprocess.run([sys.executable, "-m", "reasoner", "--help"], capture_output=True, check=True)
    assert time.time() - start < 5


def test_dry_run_prints_resolved_config(cli):
    code, out, _ = cli("train-sft", "--dry-run", "optim.lr=0.005", "run_dir=/tmp/x")
    assert code == 0
    assert "lr: 0.005" in out and "run_dir: /tmp/x" in out


def test_search_flag_equals_override(cli):
    code, _, err = cli("decode", "--dry-run", "--search", "nosuch")
    code2, _, err2 = cli("decode", "--dry-run", "search=nosuch")
    assert code == code2 == 2
    assert err == err2


def test_typo_exits_2_with_one_line(cli):
    code, out, err = cli("train-sft", "optim.lrr=1")
    assert code == 2
    assert err.strip().startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_missing_model_path_exits_2(cli, tmp_path):
    code, _, err = cli("decode", f"model={tmp_path}/does-not-exist", f"run_dir={tmp_path}/run")
    assert code == 2
    assert "does-not-exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_normalize_overrides():
    assert normalize_overrides(["model=runs/sft/final"]) == ["model.name_or_path=runs/sft/final"]
    assert normalize_overrides(["model=smollm2-135m"]) == ["model=smollm2-135m"]
    assert normalize_overrides(["data=my.jsonl"]) == ["data=jsonl", "data.path=my.jsonl"]
    assert normalize_overrides(["task=arith", "task.max_ops=3"]) == ["data=arith", "data.max_ops=3"]


def test_models_lists_presets(cli):
    code, out, _ = cli("models")
    assert code == 0
    assert "tiny-arith" in out and "smollm2-135m" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train-rl", "--dry-run", "stepz=3"], "unknown key 'stepz' (did you mean 'steps'?)"),
        (["train-rl", "--dry-run", "max_step=1"], "unknown key 'max_step'"),
        (["decode", "--dry-run", "nn=4"], "unknown key 'nn' (did you mean 'generation.n'?)"),
        (["decode", "--dry-run", "foo=1"], "unknown key 'foo'"),
        (["train-sft", "--dry-run", "prompts_per_step=4"], "unknown key 'prompts_per_step'"),  # a train-rl key
        (["decode", "--search", "beam", "search.params.widht=2", "--dry-run"], "did you mean 'search.params.width'?"),
        (["decode", "--dry-run", "k=[1,8]"], "k=8 is larger than generation.n=1"),
        (["decode", "--dry-run", "data=some.jsonl", "data.num_problems=10"],
         "data.num_problems does not apply to data=jsonl"),
        (["train-rl", "--dry-run", "algo=grpoo"], "unknown algo 'grpoo' (did you mean 'grpo'?)"),
        (["decode", "--dry-run", "--search", "beem"], "unknown search 'beem' (did you mean 'beam'?)"),
    ],
)
def test_dry_run_rejects_bad_configs_in_one_line(cli, args, fragment):
    code, out, err = cli(*args)
    assert code == 2
    assert err.startswith("error: config: ") and fragment in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_typo_stops_before_the_stage_runs(cli, monkeypatch, tmp_path):
    import reasoner.stages.train_rl as train_rl

    ran = []
    monkeypatch.setattr(train_rl, "run", lambda cfg: ran.append(cfg))
    code, _, err = cli("train-rl", "stepz=3", f"run_dir={tmp_path}/run")
    assert code == 2 and "did you mean 'steps'?" in err
    assert ran == [] and not (tmp_path / "run").exists()


def test_aliases_paths_and_group_choices_still_work(cli, tmp_path):
    code, out, err = cli("decode", "--dry-run", f"model={tmp_path}/m", "data=probs.jsonl", "n=4", "temperature=0.5",
                         "max_tokens=7", "k=[1,4]")
    assert code == 0, err
    for line in (f"name_or_path: {tmp_path}/m", "path: probs.jsonl", "'n': 4", "temperature: 0.5", "max_new_tokens: 7"):
        assert line in out
    code, out, err = cli("train-rl", "--dry-run", "model=smollm2-135m", "data=gsm8k", "algo=dapo")
    assert code == 0, err
    assert "dynamic_sampling: true" in out and "name: gsm8k" in out
