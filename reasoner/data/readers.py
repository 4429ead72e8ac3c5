"""Readers for every input form: a data file, a `save_to_disk` directory, a directory of data
files, or a hub dataset name; and Problem / Trajectory lists from them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from reasoner.errors import DataError, UserError
from reasoner.data.formats import DATA_SUFFIXES, file_rows, one_line
from reasoner.data.records import Problem, Trajectory
from reasoner.utils.hub import looks_local


def iter_rows(path_or_name: str | os.PathLike, split: str | None = None,
              config: str | None = None) -> Iterator[tuple[str, int, dict]]:
    """(source path, line/index, row) for every row; the path is the file the row came from.

    An input with no rows at all (an empty file, `[]`, a parquet file without rows) is an error
    naming it: every caller needs records, and "no problems" later would not say where to look.
    """
    name = os.fspath(path_or_name)
    path = Path(name).expanduser()
    if path.is_file():
        rows = file_rows(path)
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
        yield from file_rows(f)


def _saved_dataset_rows(path: Path, split: str | None) -> Iterator[tuple[str, int, dict]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise UserError(f"{path}: cannot load saved dataset: {one_line(exc)}") from None
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
        why = hub.unreachable_note() if state == "unreachable" else one_line(exc)
        raise UserError(f"dataset '{name}': not a file/directory and could not be loaded from the hub: {why}") from None
    for i, row in enumerate(ds):
        yield name, i, row



def read_problems(path_or_name: str | os.PathLike, split: str | None = None) -> list[Problem]:
    """Problem records (as written by to_dict) from any supported input."""
    return [Problem.from_dict(row, src, line) for src, line, row in iter_rows(path_or_name, split)]


def read_trajectories(path: str | os.PathLike) -> list[Trajectory]:
    """Trajectory records (as written by to_dict / collection) from any supported input."""
    return [Trajectory.from_dict(row, src, line) for src, line, row in iter_rows(path)]


def read_records(path: str | os.PathLike, kind: str) -> list[Problem] | list[Trajectory]:
    """read_problems or read_trajectories by name ("problem" | "trajectory")."""
    readers = {"problem": read_problems, "trajectory": read_trajectories}
    if kind not in readers:
        raise ValueError(f"unknown record kind {kind!r} (choose from {', '.join(readers)})")
    return readers[kind](path)
