"""Text generation behind one protocol: `Generator.generate(prompts, SamplingParams)`."""

from reasoner.generation.base import Completion, Generator, SamplingParams, truncate_at_stop
from reasoner.generation.hf import HFGenerator

__all__ = ["Completion", "Generator", "HFGenerator", "SamplingParams", "truncate_at_stop"]
