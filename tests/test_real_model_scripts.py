"""scripts/real_model.sh and scripts/real_model_gpu.sh: every command of every stage passes its
config check (DRY=1 runs each with --dry-run: nothing loads, nothing is written but the logs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_stage_command_passes_its_config_check(tmp_path):
    """Through the GPU script, which runs real_model.sh's stages with its own sizes."""
    runs = tmp_path / "runs"
    env = {**os.environ, "RUNS": str(runs), "DRY": "1", "PY": sys.executable, "REPORT": str(runs / "real_gpu.md"),
           "SWEEP_TASKS": "basic_arithmetic", "SWEEP_VARIANTS": "products-1d products max_digits=1"}
    stages = ["sweep", "grpo", "gsm8k_base", "sft", "prm", "offline", "report"]
    out = subprocess.run(["bash", str(ROOT / "scripts" / "real_model_gpu.sh"), *stages], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    checked = [line for line in out.stdout.splitlines() if line.startswith("== ")]
    assert "DRY-RUN FAILED" not in out.stdout
    names = {line.split(":")[0][3:] for line in checked}
    assert {"sweep-basic_arithmetic", "sweep-products-1d", "grpo", "test-grpo-task", "sft-gsm8k", "collect-shepherd",
            "prm-shepherd", "test-prm-bon", "collect-offline", "oreo", "rft", "test-oreo-task", "report"} <= names
    assert not any(runs.glob("*/summary.json")) and not (runs / "real_gpu.md").exists()
