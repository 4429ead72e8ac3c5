"""CLI surface: instant help, dry-run, path-style model/data overrides, errors exit 2 in one line."""

from __future__ import annotations

import subprocess
import sys
import time

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
