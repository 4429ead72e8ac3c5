"""Run directories: every run records what produced it (resolved config, version, git sha)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import reasoner
from reasoner.errors import UserError


def git_sha() -> str | None:
    """The commit of the reasoner source tree, when it is a git checkout."""
    src = Path(reasoner.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    if out.returncode != 0 or not sha:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return sha + ("-dirty" if dirty else "")


def prepare_run_dir(cfg, command: str) -> Path:
    """Create run_dir and write config.yaml + run.json (command, version, git sha, time)."""
    from reasoner.config import to_yaml

    run_dir = Path(cfg.run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"run_dir '{run_dir}': cannot create it ({exc.strerror})") from None
    write_text_atomic(run_dir / "config.yaml", to_yaml(cfg))
    meta = {
        "command": command,
        "argv": sys.argv,
        "version": reasoner.__version__,
        "git_sha": git_sha(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_text_atomic(run_dir / "run.json", json.dumps(meta, indent=2) + "\n")
    return run_dir


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file + fsync + rename so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
