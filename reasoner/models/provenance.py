"""Which plain model a loaded model came from, for `save_model` to name as a PEFT adapter's base.

The stages pass models to `save_model` without the `LoadedModel` they came from, so the
provenance travels with the model object itself: ONE attribute, written and read only here.
Its value is a path or hub id that `load_policy` (and, for HF/hub bases, PEFT) can load, or
None when nothing plain can be named (a preset's random init, a dequantised GGUF): the adapter
is then saved with a copy of its base in `base/`.
"""

from __future__ import annotations

from typing import TypeVar

ATTRIBUTE = "_reasoner_base_ref"

T = TypeVar("T")


def mark(model: T, ref: str | None) -> T:
    """Record that `model` (a plain transformers model) is loadable as `ref`; returns it."""
    setattr(model, ATTRIBUTE, ref)
    return model


def base_ref(model) -> str | None:
    """What `model` (plain or PEFT-wrapped: read from its base) was marked with; None if never."""
    plain = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(plain, ATTRIBUTE, None)


def carry(source, target: T) -> T:
    """Give `target` (a copy or rebuild of `source`) the same provenance; returns it."""
    return mark(target, base_ref(source))
