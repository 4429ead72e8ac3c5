"""SIGKILL a 2-process run (`reasoner launch`, torchrun, gloo) after a checkpoint and launch it
again: it resumes under the same strategy and ends with one process's metrics (losses within
1e-5 relative) and a metrics.jsonl of one record per step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner import api
from tests.conftest import TINY
from tests.dist.harness import metrics, strategy_args

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
SFT = [*TINY, "model.device=cpu", "data.num_problems=32", "batch_size=4", "grad_accum=2", "optim.warmup_steps=0",
       "log_every=1", "save_every=2", "max_steps=8"]


def _launch(run_dir: Path, strategy: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "reasoner", "launch", "--nproc", "2", "train-sft", *SFT, f"run_dir={run_dir}",
           *strategy_args(strategy, run_dir.parent)]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _kill_after_first_checkpoint(proc: subprocess.Popen, run_dir: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (run_dir / "checkpoints" / "step-2").is_dir():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
    proc.wait()


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed", "zero3"])
def test_sigkill_and_resume_on_two_processes_continues_to_the_same_metrics(tmp_path, strategy):
    single, multi = tmp_path / "single", tmp_path / "multi"
    api.run("train-sft", [*SFT, f"run_dir={single}"])
    _kill_after_first_checkpoint(_launch(multi, strategy), multi)
    assert not (multi / "summary.json").exists()
    second = _launch(multi, strategy)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert "resumed from" in out
    a, b = metrics(single), metrics(multi)
    assert [r["step"] for r in b] == list(range(1, 9))
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5), (ra, rb)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], abs=1e-4)
