"""Shared fixtures: tiny model overrides, the real data beside the repo, a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# A very small tiny-arith model so stage tests run in seconds.
TINY = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=2",
    "model.tiny.num_heads=2",
    "model.tiny.num_kv_heads=1",
    "model.tiny.intermediate_size=64",
]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    return SHARED_DATA


@pytest.fixture
def cli():
    """Invoke the Typer app in-process; returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from reasoner.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def one_thread():
    """One torch thread for a test: on a shared, oversubscribed CPU the default pool is far slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
