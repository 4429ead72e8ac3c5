"""What a transformers forward calls its KV cache, so every caller passes and reads it one way.

transformers 5.24 renamed the forward argument and the output field `past_key_values` to
`cache` (the old argument warns and goes in 5.40); earlier 5.x releases only know
`past_key_values`. The name is read once per model class from its forward signature, never from
a version number: `model(..., **cache_kwargs(model, cache))` passes it, `returned_cache(out)`
reads it back from the output under whichever field that output class has (reading the old
field on a new output warns too).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect

NAMES = ("cache", "past_key_values")  # newest first


def forward_parameters(model) -> frozenset[str]:
    """The argument names of the model's forward (a PEFT wrapper's base model's: the wrapper
    passes keyword arguments through); empty when the signature cannot be read."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _parameters(type(base))


@functools.lru_cache(maxsize=None)
def _parameters(cls) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(cls.forward).parameters)
    except (AttributeError, TypeError, ValueError):
        return frozenset()


def cache_argument(model) -> str | None:
    """'cache' or 'past_key_values', whichever the forward takes (the new one if both), or
    None when it takes no KV cache argument."""
    params = forward_parameters(model)
    return next((name for name in NAMES if name in params), None)


def cache_kwargs(model, cache) -> dict:
    """Keyword arguments that hand `cache` to the model's forward and ask it to fill it."""
    name = cache_argument(model)
    if name is None:
        raise TypeError(f"{type(model).__name__}.forward takes no KV cache argument (none of {', '.join(NAMES)})")
    return {name: cache, "use_cache": True}


def returned_cache(out, default=None):
    """The cache a forward returned (`default` when it returned none)."""
    value = getattr(out, _output_field(type(out)), None)
    return default if value is None else value


@functools.lru_cache(maxsize=None)
def _output_field(cls) -> str:
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return next((name for name in NAMES if name in fields), NAMES[-1])
