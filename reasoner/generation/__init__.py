"""Text generation behind one protocol: `Generator.generate(prompts, SamplingParams)`.

`HFGenerator` is imported on first use (module `__getattr__`): importing the protocol, e.g.
for search parameters while a config loads, does not import torch or transformers.
"""

from reasoner.generation.base import Completion, Generator, SamplingParams, truncate_at_stop

__all__ = ["Completion", "Generator", "HFGenerator", "SamplingParams", "truncate_at_stop"]


def __getattr__(name: str):
    if name == "HFGenerator":
        from reasoner.generation.hf import HFGenerator

        return HFGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
