"""Run directories: every run records what produced it (resolved config, version, git sha)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import reasoner
from reasoner.errors import UserError
from reasoner.utils.io import write_text_atomic  # noqa: F401  (the one atomic writer; imported from here too)


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


def check_run_dir(run_dir) -> Path:
    """Fail before any work (data, model) when run_dir cannot hold a run: it is a file, something
    on its path is a file, or it (or the directory it would be created in) is not writable.
    Writability is tried with a temp file, which also catches read-only mounts and root on
    immutable directories where permission bits say nothing."""
    if run_dir is None or not str(run_dir).strip():
        raise UserError("run_dir is empty: give the directory the run writes to (run_dir=PATH)")
    path = Path(run_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"run_dir '{run_dir}': is a file, not a directory")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"run_dir '{run_dir}': '{probe}' is a file, so the directory cannot be created there")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".reasoner-write-check-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        what = "not writable" if probe == path else f"cannot be created in '{probe}'"
        raise UserError(f"run_dir '{run_dir}': {what} ({exc.strerror or exc.__class__.__name__})") from None
    return path


def prepare_run_dir(cfg, command: str) -> Path:
    """Create run_dir and write config.yaml + run.json (command, version, git sha, time); on N
    processes rank 0 does, and its run_dir is every rank's."""
    from reasoner import dist

    run_dir = Path(dist.broadcast_object(str(check_run_dir(cfg.run_dir)) if dist.is_main() else None))
    if dist.is_main():
        _write_run_files(cfg, command, run_dir)
    dist.barrier()
    return run_dir


def _write_run_files(cfg, command: str, run_dir: Path) -> None:
    from reasoner.config import to_yaml

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", to_yaml(cfg))
        meta = {
            "command": command,
            "argv": sys.argv,
            "version": reasoner.__version__,
            "git_sha": git_sha(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_text_atomic(run_dir / "run.json", json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"run_dir '{cfg.run_dir}': cannot write to it ({exc.strerror or exc.__class__.__name__})") from None


