"""Rows of one data file (.jsonl / .ndjson, .json, .parquet), each bad row a DataError naming file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from reasoner.errors import DataError, UserError
from reasoner.data.validation import type_name

DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")


def file_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        reader = jsonl_rows
    elif suffix == ".json":
        reader = json_rows
    elif suffix == ".parquet":
        reader = parquet_rows
    else:
        raise UserError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .json or .parquet)")
    try:
        yield from reader(path)
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot read it ({exc.strerror or one_line(exc)})") from None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(text: str, where: str, line: int | None):
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
        raise DataError(where, line, None, f"invalid JSON: {one_line(exc)}") from None


def check_unicode(row: dict, raw: bytes, where: str, line: int | None) -> None:
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


def jsonl_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
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
            row = parse_json(text, where, n)
            if not isinstance(row, dict):
                raise DataError(where, n, None, f"expected a JSON object, got {type_name(row)}")
            check_unicode(row, raw, where, n)
            yield where, n, row


def _not_utf8(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "not valid UTF-8 (the file is UTF-16: save it as UTF-8)"
    return "not valid UTF-8 text (a binary file, or another encoding: save it as UTF-8)"


def json_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
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
            yield from jsonl_rows(path)
            return
        raise DataError(where, exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except (RecursionError, ValueError):
        parse_json(text, where, None)  # raises the DataError
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))     # {"data": [...]}
    if not isinstance(data, list):
        raise DataError(where, None, None, f"expected a list of objects, got {type_name(data)}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(where, i, None, f"expected an object, got {type_name(row)}")
        check_unicode(row, raw, where, i)
        yield where, i, row


def parquet_rows(path: Path) -> Iterator[tuple[str, int, dict]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(str(path), None, None, f"cannot read parquet: {one_line(exc)}") from None
    i = 0
    batches = pf.iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
            rows = [] if batch is None else batch.to_pylist()
        except Exception as exc:  # a corrupt page or a type pyarrow cannot turn into Python
            raise DataError(str(path), i, None, f"cannot read parquet: {one_line(exc)}") from None
        if batch is None:
            return
        for row in rows:
            yield str(path), i, row
            i += 1



def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else exc.__class__.__name__
    return msg[:300]
