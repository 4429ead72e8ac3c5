"""Crash-safe JSON / JSON-lines files.

Whole-file writes go through a temp file in the same directory + fsync + os.replace, so a reader
sees the old file or the new one, never half of one; whole directories (checkpoints, copied model
dirs) the same way through `atomic_dir`. Appends write complete lines in one call and fsync, so a
SIGKILL can at worst leave one torn trailing line, which `read_jsonl_tolerant` drops and
`append_jsonl` repairs before writing. This module is the one place that does temp-then-rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from reasoner.errors import DataError


def _as_dict(record: Any) -> Any:
    """Records may be dataclasses with to_dict() (Problem, Trajectory) or plain dicts."""
    to_dict = getattr(record, "to_dict", None)
    return to_dict() if callable(to_dict) else record


def _jsonl_bytes(records: Iterable[Any]) -> bytes:
    lines = [json.dumps(_as_dict(r), ensure_ascii=False) + "\n" for r in records]
    return "".join(lines).encode("utf-8")


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (the directory entry); best effort where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` atomically (temp file in the same dir, fsync, os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(Path(dirpath) / name, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


@contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp directory beside `final` to write into; when the block ends without
    an error its files are fsynced and it takes the place of `final` (an old `final` is moved
    aside first and removed after), so a crash leaves the old directory or the new one, never
    half of one. On an error the temp directory is removed and `final` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    trash = None
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, trash / final.name)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def copy_dir_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the directory `src` to `dst` through `atomic_dir` (an existing `dst` is replaced)."""
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return Path(dst)


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Write all records as JSON lines, replacing the file atomically."""
    write_bytes_atomic(path, _jsonl_bytes(records))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write one JSON document atomically (summaries, configs)."""
    write_text_atomic(path, json.dumps(_as_dict(obj), ensure_ascii=False, indent=indent) + "\n")


def _repair_tail(fd: int) -> bytes:
    """Bytes to write before new lines so a torn tail left by a crash cannot merge with them.

    A trailing fragment that is valid JSON (a file written without a final newline) is kept and
    terminated; one that is not (a line cut by a crash) is truncated away.
    """
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return b""
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return b""
    # find the start of the last line
    chunk, pos = 65536, size
    start = 0
    while pos > 0:
        lo = max(0, pos - chunk)
        os.lseek(fd, lo, os.SEEK_SET)
        block = os.read(fd, pos - lo)
        nl = block.rfind(b"\n")
        if nl >= 0:
            start = lo + nl + 1
            break
        pos = lo
    os.lseek(fd, start, os.SEEK_SET)
    tail = os.read(fd, size - start)
    try:
        json.loads(tail.decode("utf-8"))
        return b"\n"
    except (UnicodeDecodeError, ValueError):
        os.ftruncate(fd, start)
        return b""


def append_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> int:
    """Append complete JSON lines with one write + fsync; returns how many were written.

    Used for resumable outputs (collection, decoding): after a crash every line but possibly the
    last is whole, and the next append first removes a torn last line.
    """
    records = list(records)
    if not records:
        return 0
    data = _jsonl_bytes(records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = _repair_tail(fd) + data
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(records)


def read_jsonl_tolerant(path: str | os.PathLike) -> tuple[list[Any], int]:
    """Read a JSON-lines file that may end in a line torn by a crash.

    Returns (records, n_dropped): an unparseable *last* line is dropped and counted; an
    unparseable line anywhere else is real corruption and raises DataError with its line number.
    """
    path = Path(path)
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records: list[Any] = []
    dropped = 0
    last = max((i for i, b in enumerate(lines) if b.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:
            if i == last:
                dropped += 1
                continue
            raise DataError(str(path), i + 1, None, f"invalid JSON line ({exc.__class__.__name__})") from None
    return records, dropped


def keep_jsonl(path: str | os.PathLike, keep) -> int:
    """Rewrite a JSON-lines file atomically with only the records `keep(record)` accepts; returns
    how many were dropped (a line torn by a crash is dropped too). A missing file is left alone.

    Resumable outputs appended once per step (RLEP's pool.jsonl) use it on resume to drop what
    the steps after the checkpoint wrote, since those steps run again and append it again.
    """
    path = Path(path)
    if not path.exists():
        return 0
    records, torn = read_jsonl_tolerant(path)
    kept = [r for r in records if keep(r)]
    dropped = len(records) - len(kept) + torn
    if dropped:
        write_jsonl_atomic(path, kept)
    return dropped
