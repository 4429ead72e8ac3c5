"""One generation engine for every rank: rank 0 holds it (vLLM under the launcher), the other
ranks send it their prompts.

N processes starting N vLLM engines would each reserve the accelerator's memory and none would
see the other ranks' updates. Here rank 0 builds the one engine (`build`). At each `generate`
every rank's prompts and sampling parameters are gathered to rank 0, which generates them all
in one call and sends each rank its own completions. With per-prompt seeds (`seed_per_prompt`,
on by default under N processes) every prompt is sampled exactly as it is inside the whole
batch; without them rank 0's seed is used over the concatenated batch. `update_weights` is
called on every rank after an update (ZeRO-3 weights are gathered by the caller, `full_weights`);
rank 0 loads them into its engine (LoRA merged, `generation.vllm.VLLMGenerator.update_weights`).
The trainer recomputes every log-probability it trains on; the engine only samples.
A failure on rank 0 (a prompt too long for the engine) reaches every rank as the same error.
"""

from __future__ import annotations

from dataclasses import replace

from reasoner.dist import context
from reasoner.errors import UserError


class RankZeroEngine:
    """A `Generator` on every rank backed by one engine on rank 0 (None on the other ranks)."""

    def __init__(self, engine=None):
        self.engine = engine

    @classmethod
    def build(cls, make) -> "RankZeroEngine":
        """`make()` (the engine) runs on rank 0 only; its UserError is raised on every rank."""
        engine, problem = None, None
        if context.is_main():
            try:
                engine = make()
            except UserError as err:
                problem = str(err)
        problem = context.broadcast_object(problem)
        if problem is not None:
            raise UserError(problem)
        return cls(engine)

    def generate(self, prompts: list[str], params):
        """This rank's completions of `prompts` (result[i]: params.n of prompts[i]), generated on rank 0."""
        asks = context.gather_objects((list(prompts), params))
        parts = None
        if context.is_main():
            try:
                merged = merged_params([p for _, p in asks])
                out = self.engine.generate([text for texts, _ in asks for text in texts], merged)
                parts, start = [], 0
                for texts, _ in asks:
                    parts.append(("ok", out[start:start + len(texts)]))
                    start += len(texts)
            except (ValueError, UserError) as err:
                parts = [("error", f"{type(err).__name__}: {err}")] * len(asks)
        kind, value = context.scatter_objects(parts)
        if kind == "error":
            raise ValueError(f"generation on rank 0: {value}")
        return value

    def update_weights(self, model) -> None:
        """Every rank calls this after an update (whole weights in hand); rank 0's engine loads them."""
        if self.engine is not None:  # the other ranks wait at the next generate's gather
            self.engine.update_weights(model)

    def close(self) -> None:
        if self.engine is not None and hasattr(self.engine, "close"):
            self.engine.close()


def merged_params(per_rank: list):
    """One call's sampling parameters for every rank's prompts, in rank order: the ranks' own
    except the per-prompt seeds, which are concatenated (None when a rank has none)."""
    first = per_rank[0]
    for p in per_rank[1:]:
        if replace(p, prompt_seeds=None) != replace(first, prompt_seeds=None):
            raise ValueError(f"ranks asked for different sampling parameters ({first} vs {p})")
    if any(p.prompt_seeds is None for p in per_rank):
        return replace(first, prompt_seeds=None)
    return replace(first, prompt_seeds=[s for p in per_rank for s in p.prompt_seeds])
