"""Running a command on N CPU processes (gloo) from a test, and what each rank wrote.

`run_ranks` spawns N python processes that join one process group (as torchrun's workers
would: RANK, WORLD_SIZE, MASTER_ADDR/PORT) and run `reasoner.api.run`; each rank records, with
an audit hook, every file or directory it created, wrote, renamed or removed under run_dir.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

WRITE_EVENTS = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree", "os.symlink")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _writes_under(root: str, log: list):
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = (args[1] or ""), (args[2] if len(args) > 2 else 0) or 0
            writing = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            paths = [args[0]] if writing else []
        elif event in WRITE_EVENTS:
            paths = [a for a in args[:2] if isinstance(a, (str, os.PathLike))]
        else:
            return
        for p in paths:
            p = os.path.abspath(os.fsdecode(p))
            if p.startswith(root):
                log.append(p)

    return hook


def _worker(rank: int, world: int, port: int, command: str, overrides: list, run_dir: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import torch

    torch.set_num_threads(1)
    from reasoner import api

    written: list = []
    sys.addaudithook(_writes_under(os.path.abspath(run_dir), written))
    summary = api.run(command, overrides)
    record = {"rank": rank, "written": sorted(set(written)), "summary": summary}
    Path(out, f"rank-{rank}.json").write_text(json.dumps(record, default=str))


def run_ranks(command: str, overrides: list[str], run_dir: Path, out: Path, nproc: int = 2) -> list[dict]:
    """Run `reasoner <command> <overrides> run_dir=...` on nproc processes; each rank's record."""
    import torch.multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    args = (nproc, free_port(), command, [*overrides, f"run_dir={run_dir}"], str(run_dir), str(out))
    mp.start_processes(_worker, args=args, nprocs=nproc, start_method="spawn", join=True)
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in range(nproc)]


# ZeRO-3 as the tests run it: every weight partitioned, even a tiny model's (DeepSpeed keeps
# weights under 1e5 elements whole by default, which would be all of them here)
ZERO3_CONFIG = {"zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}}


def strategy_args(strategy: str, where: Path) -> list[str]:
    """The overrides of a strategy as the tests name it: single, ddp, deepspeed (ZeRO-2) or zero3
    (a DeepSpeed json written under `where`); skips the test when deepspeed is not installed."""
    if strategy in ("deepspeed", "zero3"):
        import pytest

        pytest.importorskip("deepspeed")
    if strategy == "zero3":
        path = Path(where) / "zero3.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ZERO3_CONFIG))
        return ["dist.strategy=deepspeed", "dist.zero_stage=3", f"dist.deepspeed_config={path}"]
    return [f"dist.strategy={strategy}"]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
