"""What `model.name_or_path` points at, found without loading anything, and the one-line errors
for sources that are not there.

`name_or_path` may be a preset name (`PRESETS`), a local directory (an HF model, a PEFT adapter,
a saved `ValueModel`, or a directory holding .gguf files), a path to a .gguf file, or a Hugging
Face Hub id (`org/name`, with `gguf_file` for a GGUF repo).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from reasoner.errors import UserError
from reasoner.models.presets import PRESETS

VALUE_HEAD_FILE = "value_head.safetensors"  # marks a saved ValueModel directory
BASE_SUBDIR = "base"  # an adapter directory's own copy of its base, when the base has no name


@dataclass(frozen=True)
class Source:
    """What `name_or_path` points at. kind: preset | hf | gguf | adapter | value | hub."""

    kind: str
    ref: str  # preset name, absolute local path, or hub id
    gguf_file: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.kind == "gguf" or (self.kind == "preset" and PRESETS[self.ref].gguf)

    @property
    def local(self) -> bool:
        return self.kind in ("hf", "adapter", "value") or (self.kind == "gguf" and os.path.isabs(self.ref))


def not_found(name: str, reason: str = "") -> UserError:
    """The one-line error for a name that is no preset, path or reachable hub model."""
    presets = ", ".join(PRESETS)
    close = difflib.get_close_matches(name, PRESETS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    extra = f" ({reason})" if reason else ""
    return UserError(f"model '{name}': no such preset, directory or file (presets: {presets}){extra}{hint}")


def resolve_source(name_or_path: str, gguf_file: str | None = None) -> Source:
    """Classify `name_or_path` without loading anything (presets win over same-named dirs)."""
    name = str(name_or_path).strip()
    if not name:
        raise UserError("model.name_or_path is empty (use a preset, a directory, a .gguf file or a hub id)")
    if name in PRESETS:
        return Source("preset", name)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UserError(f"model '{name}': is a file but not a .gguf; give a model directory or a .gguf file")
        return Source("gguf", str(path.resolve().parent), path.name)
    if path.is_dir():
        return _classify_dir(name, path.resolve(), gguf_file)
    if _looks_local(name):
        raise not_found(name)
    return Source("gguf", name, gguf_file) if gguf_file else Source("hub", name)


def _looks_local(name: str) -> bool:
    """Paths (./x, /x, ~/x, a/b/c, runs/x when runs/ exists, x.gguf) are never sent to the
    hub: a typo there should fail at once (the rule: `reasoner.utils.hub`)."""
    from reasoner.utils.hub import looks_local

    return looks_local(name, (".gguf",))


def _classify_dir(name: str, path: Path, gguf_file: str | None) -> Source:
    if gguf_file:
        if not (path / gguf_file).is_file():
            raise UserError(f"model '{name}': model.gguf_file '{gguf_file}' is not in that directory")
        return Source("gguf", str(path), gguf_file)
    if (path / VALUE_HEAD_FILE).is_file():
        return Source("value", str(path))
    if (path / "adapter_config.json").is_file():
        return Source("adapter", str(path))
    if (path / "config.json").is_file():
        return Source("hf", str(path))
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) == 1:
        return Source("gguf", str(path), ggufs[0])
    if ggufs:
        raise UserError(f"model '{name}': several .gguf files ({', '.join(ggufs)}); choose one with model.gguf_file=NAME")
    raise UserError(f"model '{name}': directory has no config.json, adapter_config.json or .gguf file")


def adapter_base(adapter_dir: str) -> str:
    """Where an adapter's base is: its own `base/` copy, else adapter_config's base_model_name_or_path."""
    own = Path(adapter_dir) / BASE_SUBDIR
    if (own / "config.json").is_file():
        return str(own)
    conf = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    base = conf.get("base_model_name_or_path")
    if not base:
        raise UserError(f"model '{adapter_dir}': adapter_config.json names no base_model_name_or_path")
    return base


@contextlib.contextmanager
def hub_errors(src: Source):
    """A failed hub download (unknown id, no network) becomes the one-line 'no such model'
    error; a local checkpoint transformers cannot read (e.g. no tokenizer files) says so.

    A hub id is asked about once, with a short time limit, before transformers downloads
    anything: a missing repo fails at once, and an unreachable hub makes the load use the local
    cache only (offline mode), so neither waits out the hub client's retries."""
    from reasoner.utils import hub

    state = None if src.local or src.kind == "preset" else hub.status(src.ref, "model")
    if state == "missing":
        raise not_found(src.ref, "nor a model on the Hugging Face Hub")
    try:
        with hub.offline_mode() if state == "unreachable" else contextlib.nullcontext():
            yield
    except (OSError, ValueError) as err:
        if src.local:
            raise UserError(f"model '{src.ref}': cannot be loaded ({_first_line(err)})") from None
        if isinstance(err, ValueError):
            raise
        if state == "unreachable":
            raise not_found(src.ref, hub.unreachable_note()) from None
        raise not_found(src.ref, f"not on the Hugging Face Hub or hub unreachable: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
