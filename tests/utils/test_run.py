"""run_dir problems (a file, a read-only directory) stop with one line, exit 2, before any model loads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reasoner.errors import UserError
from reasoner.utils.run import check_run_dir
from tests.conftest import TINY


def _writable(path: Path) -> bool:
    try:
        (path / ".probe").write_text("x")
    except OSError:
        return False
    (path / ".probe").unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody can write to: mode 555, or (as root, who ignores modes) immutable."""
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    immutable = False
    if _writable(path):
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    if _writable(path):
        path.chmod(0o755)
        pytest.skip("cannot make a read-only directory here (root without chattr)")
    yield path
    if immutable:
        subprocess.run(["chattr", "-i", str(path)], check=False)
    path.chmod(0o755)


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a stage gets as far as loading a model."""
    import reasoner.models as M

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the run_dir was checked")

    monkeypatch.setattr(M, "load_policy", refuse)
    monkeypatch.setattr(M, "load_value_model", refuse)


@pytest.mark.parametrize("command", ["decode", "collect", "train-rl", "train-sft"])
def test_read_only_run_dir_is_one_line_before_the_model(cli, read_only_dir, no_model, command):
    for run_dir in (read_only_dir, read_only_dir / "new" / "run"):
        code, _, err = cli(command, *TINY, f"run_dir={run_dir}", "data.num_problems=4")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"error: run_dir '{run_dir}'") and "Traceback" not in err
    assert os.listdir(read_only_dir) == []


@pytest.mark.parametrize("command", ["decode", "collect", "train-prm", "train-rl", "train-sft", "eval-prm"])
def test_run_dir_that_is_a_file_is_one_line_before_the_model(cli, tmp_path, no_model, command):
    (tmp_path / "afile").write_text("not a directory")
    for run_dir, what in ((tmp_path / "afile", "is a file, not a directory"),
                          (tmp_path / "afile" / "sub", "is a file, so the directory cannot be created")):
        code, _, err = cli(command, *TINY, f"run_dir={run_dir}")
        assert code == 2 and len(err.strip().splitlines()) == 1 and what in err, err


def test_check_run_dir_accepts_new_and_existing_directories(tmp_path):
    assert check_run_dir(tmp_path) == tmp_path
    assert check_run_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()           # checking creates nothing
    assert sorted(os.listdir(tmp_path)) == []
    with pytest.raises(UserError, match="run_dir is empty"):
        check_run_dir("")


def test_prepare_run_dir_write_failure_is_a_user_error(read_only_dir):
    from reasoner import config
    from reasoner.utils.run import prepare_run_dir

    cfg = config.load("decode", TINY + [f"run_dir={read_only_dir}"])
    with pytest.raises(UserError, match="not writable"):
        prepare_run_dir(cfg, "decode")
