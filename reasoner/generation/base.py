"""The generation contract every backend implements (HF now, vLLM later).

Stages only talk to `Generator.generate`, so swapping backends never touches stage code.
Semantics follow vLLM, the fast backend we benchmark against, so results are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0  # 0 -> greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)  # text is cut before the first stop string (vLLM semantics)
    seed: int | None = None
    # one seed per prompt: each sample's draws then depend only on (its prompt's seed, its index
    # among the prompt's n, the token position), not on the batch it shares (chunking, processes)
    prompt_seeds: list[int] | None = None


@dataclass
class Completion:
    text: str  # generated text, stop string excluded
    token_ids: list[int]  # generated ids up to and including the token that ended it
    logprobs: list[float]  # log p(token) under the model at temperature 1 (raw logits); RL recomputes its own at T
    finish_reason: str  # "stop" (stop string or EOS) | "length"
    stop_reason: str | None = None  # the stop string matched, or None (EOS / length)


class Generator(Protocol):
    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """result[i] has params.n completions for prompts[i]; prompts are already templated text."""
        ...


def check_params(params: SamplingParams) -> None:
    """Reject settings no backend can honour (ValueError: a programming error, not user input)."""
    if params.n < 1:
        raise ValueError(f"n must be >= 1, got {params.n}")
    if params.temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {params.temperature}")
    if not 0.0 < params.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {params.top_p}")
    if params.max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {params.max_new_tokens}")


def sequence_seed(prompt_seed: int, index: int) -> int:
    """The seed of the index-th sample of a prompt whose seed is prompt_seed."""
    return (int(prompt_seed) * 1_000_003 + index) % (2**63 - 1)


def find_stop(text: str, stops: list[str]) -> tuple[int, str] | None:
    """Position and value of the earliest stop string in `text` (ties: first in `stops`)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        pos = text.find(stop)
        if pos >= 0 and (best is None or pos < best[0]):
            best = (pos, stop)
    return best


def truncate_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """Cut `text` before the earliest stop string; return (text, matched stop or None)."""
    hit = find_stop(text, stops)
    if hit is None:
        return text, None
    return text[: hit[0]], hit[1]
