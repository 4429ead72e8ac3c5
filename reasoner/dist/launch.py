"""`reasoner launch`: a training command on N processes (and M nodes), through torchrun.

    reasoner launch --nproc 2 train-sft max_steps=100
    -> python -m torch.distributed.run --standalone --nproc_per_node 2 -m reasoner train-sft max_steps=100 dist.strategy=ddp

dist.strategy defaults to ddp (pass dist.strategy=deepspeed for ZeRO). Several nodes: run the
same command on each with --nnodes M --rdzv HOST:PORT (torchrun's c10d rendezvous, HOST one of
the nodes). The overrides are checked here first, so a bad one stops before any process starts.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

from reasoner.errors import UserError

COMMANDS = ("train-sft", "train-prm", "train-rl")


def torchrun_argv(command: str, overrides: list[str], nproc: int, nnodes: int = 1, rdzv: str | None = None,
                  rdzv_id: str = "reasoner") -> list[str]:
    """The torchrun command line that runs `reasoner <command> <overrides>` on nproc x nnodes processes."""
    if command not in COMMANDS:
        raise UserError(f"launch: '{command}' is not a training command (launch runs {', '.join(COMMANDS)})")
    if nproc < 1 or nnodes < 1:
        raise UserError(f"launch: --nproc and --nnodes must be >= 1 (got {nproc}, {nnodes})")
    if nnodes > 1 and not rdzv:
        raise UserError("launch: --nnodes > 1 needs --rdzv HOST:PORT (a node every node can reach)")
    if rdzv is not None and (":" not in rdzv or not rdzv.rsplit(":", 1)[1].isdigit()):
        raise UserError(f"launch: --rdzv '{rdzv}' must look like HOST:PORT")
    overrides = list(overrides)
    if not any(o.split("=", 1)[0] == "dist.strategy" for o in overrides):
        overrides.append("dist.strategy=ddp")
    run = [sys.executable, "-m", "torch.distributed.run"]
    if rdzv is None:
        run += ["--standalone", "--nproc_per_node", str(nproc)]
    else:
        run += ["--nnodes", str(nnodes), "--nproc_per_node", str(nproc), "--rdzv_backend", "c10d",
                "--rdzv_endpoint", rdzv, "--rdzv_id", rdzv_id]
    return [*run, "-m", "reasoner", command, *overrides]


def check_world(command: str, cfg, n: int) -> None:
    """What a run on n processes needs beyond its config (checked by the launcher before any
    process starts, and by every rank): online RL splits whole prompt groups evenly; offline RL
    trains from a file in one round (collecting runs on one process)."""
    if n <= 1 or command != "train-rl":
        return
    from reasoner.algos.registry import get_algorithm

    if get_algorithm(cfg.algo.name).kind == "online":
        from reasoner.rl.recipe import validate_sharding

        validate_sharding(cfg, n)
    elif cfg.rounds > 1 or cfg.train_file is None:
        raise UserError(f"config: offline RL on {n} processes needs train_file= and rounds=1 (collecting "
                        "between rounds runs on one process)")


def show(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def launch(command: str, overrides: list[str], nproc: int, nnodes: int = 1, rdzv: str | None = None) -> int:
    """Check the overrides, then run torchrun; its exit status (2 when a rank stopped on bad input)."""
    import subprocess

    from reasoner import api

    argv = torchrun_argv(command, overrides, nproc, nnodes, rdzv)
    cfg = api.load_config(command, argv[argv.index(command) + 1:])  # a bad override: one line here, not N tracebacks
    check_world(command, cfg, nproc * nnodes)
    with tempfile.TemporaryDirectory(prefix="reasoner-launch-") as marks:
        code = subprocess.call(argv, env={**os.environ, ERRORS_ENV: marks})
        # torchrun reports any failed rank as 1; a rank that stopped on bad input left a mark
        return 2 if code and any(Path(marks).iterdir()) else code


ERRORS_ENV = "REASONER_LAUNCH_ERRORS"


def mark_user_error(message: str) -> None:
    """Under `reasoner launch`: note that this rank stopped on bad input, so launch exits 2."""
    marks = os.environ.get(ERRORS_ENV)
    if marks and Path(marks).is_dir():
        (Path(marks) / f"rank{os.environ.get('RANK', '0')}").write_text(message, encoding="utf-8")
