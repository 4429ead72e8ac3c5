"""Rows from every input form: a .jsonl / .json / .parquet file, a `save_to_disk` directory, a
directory of data files, or a hub dataset name, as (source file, line, row) triples. Bad input
raises DataError naming file, line (1-based for jsonl, 0-based record index otherwise) and
field; the records built from the rows (Problem, Trajectory) are in reasoner.data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from reasoner.errors import DataError, UserError
from reasoner.utils.hub import looks_local

DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")


def type_name(value: Any) -> str:
    """How a JSON value's type reads in a message ("a list", "null", ...)."""
    return {dict: "an object", list: "a list", str: "a string", type(None): "null",
            bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def iter_rows(path_or_name: str | os.PathLike, split: str | None = None,
              config: str | None = None) -> Iterator[tuple[str, int, dict]]:
    """(source path, line/index, row) for every row; the path is the file the row came from.

    An input with no rows at all (an empty file, `[]`, a parquet file without rows) is an error
    naming it: every caller needs records, and "no problems" later would not say where to look.
    """
    name = os.fspath(path_or_name)
    path = Path(name).expanduser()
    if path.is_file():
        rows = _file_rows(path)
    elif path.is_dir():
        rows = _dir_rows(path, split)
    elif path.exists():
        raise UserError(f"{name}: not a regular file or directory")
    elif looks_local(name, DATA_SUFFIXES + (".arrow", ".csv")):
        raise UserError(f"{name}: no such file or directory")
    else:
        rows = _hub_rows(name, split, config)
    empty = True
    for item in rows:
        empty = False
        yield item
    if empty:
        raise DataError(name, None, None, "holds no records" + (" (the file is empty)" if path.is_file()
                                                                and path.stat().st_size == 0 else ""))


def read_rows(path_or_name: str | os.PathLike, split: str | None = None,
              config: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line, row) pairs: 1-based line for jsonl, 0-based record index for other formats."""
    for _, line, row in iter_rows(path_or_name, split, config):
        yield line, row


def _file_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        reader = _jsonl_rows
    elif suffix == ".json":
        reader = _json_rows
    elif suffix == ".parquet":
        reader = _parquet_rows
    else:
        raise UserError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .json or .parquet)")
    try:
        yield from reader(path)
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot read it ({exc.strerror or _one_line(exc)})") from None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _parse_json(text: str, where: str, line: int | None):
    """json.loads with every failure as a DataError: syntax, nesting too deep for the parser,
    integers longer than Python converts."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(where, line if line is not None else exc.lineno, None,
                        f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise DataError(where, line, None, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than int() accepts
        raise DataError(where, line, None, f"invalid JSON: {_one_line(exc)}") from None


def _check_unicode(row: dict, raw: bytes, where: str, line: int | None) -> None:
    """JSON can escape half a surrogate pair (\\ud800), which is no text at all: it cannot be
    tokenised or written back as UTF-8. Only rows whose raw bytes hold such an escape are walked."""
    if not _SURROGATE_ESCAPE.search(raw):
        return

    def bad(value) -> bool:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
            return False
        if isinstance(value, dict):
            return any(bad(k) or bad(v) for k, v in value.items())
        if isinstance(value, list):
            return any(bad(v) for v in value)
        return False

    for key, value in row.items():
        if bad(key) or bad(value):
            raise DataError(where, line, key if not bad(key) else None,
                            "holds an unpaired surrogate escape (\\ud800-\\udfff), which is not valid text")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
    where = str(path)
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError:
                raise DataError(where, n, None, _not_utf8(raw)) from None
            if not text.strip():
                continue
            if "\x00" in text:
                raise DataError(where, n, None, "holds NUL bytes (a binary file?)")
            row = _parse_json(text, where, n)
            if not isinstance(row, dict):
                raise DataError(where, n, None, f"expected a JSON object, got {type_name(row)}")
            _check_unicode(row, raw, where, n)
            yield where, n, row


def _not_utf8(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "not valid UTF-8 (the file is UTF-16: save it as UTF-8)"
    return "not valid UTF-8 text (a binary file, or another encoding: save it as UTF-8)"


def _json_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
    where = str(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(where, None, None, _not_utf8(raw)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":     # JSON lines in a .json file
            yield from _jsonl_rows(path)
            return
        raise DataError(where, exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except (RecursionError, ValueError):
        _parse_json(text, where, None)  # raises the DataError
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))     # {"data": [...]}
    if not isinstance(data, list):
        raise DataError(where, None, None, f"expected a list of objects, got {type_name(data)}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(where, i, None, f"expected an object, got {type_name(row)}")
        _check_unicode(row, raw, where, i)
        yield where, i, row


def _parquet_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(str(path), None, None, f"cannot read parquet: {_one_line(exc)}") from None
    i = 0
    batches = pf.iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
            rows = [] if batch is None else batch.to_pylist()
        except Exception as exc:  # a corrupt page or a type pyarrow cannot turn into Python
            raise DataError(str(path), i, None, f"cannot read parquet: {_one_line(exc)}") from None
        if batch is None:
            return
        for row in rows:
            yield str(path), i, row
            i += 1


def _split_matches(rel: Path, split: str) -> bool:
    """train.jsonl, train-00000-of-00001.parquet, train/x.jsonl all belong to split 'train'."""
    stem = rel.name.split(".")[0]
    return (stem == split or stem.startswith((f"{split}-", f"{split}_"))
            or split in rel.parts[:-1])


def _dir_rows(path: Path, split: str | None) -> Iterator[tuple[str, int, dict]]:
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        yield from _saved_dataset_rows(path, split)
        return
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise UserError(f"{path}: directory holds no .jsonl/.json/.parquet files or saved dataset")
    if split is not None:
        chosen = [f for f in files if _split_matches(f.relative_to(path), split)]
        if not chosen and len(files) > 1:
            names = ", ".join(str(f.relative_to(path)) for f in files[:8])
            raise UserError(f"{path}: no file for split '{split}' (found {names})")
        files = chosen or files
    for f in files:
        yield from _file_rows(f)


def _saved_dataset_rows(path: Path, split: str | None) -> Iterator[tuple[str, int, dict]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise UserError(f"{path}: cannot load saved dataset: {_one_line(exc)}") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = _pick_split(ds, split, str(path))
    for i, row in enumerate(ds):
        yield str(path), i, row


def _pick_split(dd, split: str | None, where: str):
    """One split of a DatasetDict: the one asked for, or the only one there is."""
    if split in dd:
        return dd[split]
    if len(dd) == 1:
        return next(iter(dd.values()))
    if split is None and "train" in dd:
        return dd["train"]
    raise UserError(f"{where}: no split '{split}' (has {', '.join(dd.keys())})")


def _hub_rows(name: str, split: str | None, config: str | None) -> Iterator[tuple[str, int, dict]]:
    from reasoner.utils import hub

    state = hub.status(name, "dataset")
    if state == "missing":
        raise UserError(f"dataset '{name}': no such file or directory, nor a dataset on the Hugging Face Hub")
    try:
        import datasets

        with hub.offline_mode() if state == "unreachable" else contextlib.nullcontext():
            ds = datasets.load_dataset(name, config, split=split or "train")
    except Exception as exc:  # network, auth, missing repo, bad split: all one user-facing line
        why = hub.unreachable_note() if state == "unreachable" else _one_line(exc)
        raise UserError(f"dataset '{name}': not a file/directory and could not be loaded from the hub: {why}") from None
    for i, row in enumerate(ds):
        yield name, i, row


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else exc.__class__.__name__
    return msg[:300]
