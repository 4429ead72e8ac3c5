"""Choose the generation backend by name; the only place stages learn which backends exist."""

from __future__ import annotations

from reasoner.errors import UserError

BACKENDS = ("hf", "vllm")


def build_generator(gen_cfg, model, tokenizer):
    """A Generator for an already loaded policy (HF backend)."""
    if gen_cfg.backend == "hf":
        from reasoner.generation.hf import HFGenerator

        return HFGenerator(model, tokenizer, batch_size=gen_cfg.batch_size)
    if gen_cfg.backend == "vllm":
        raise UserError("config: generation.backend=vllm is not available in this build yet; use generation.backend=hf")
    raise UserError(f"config: generation.backend must be one of {', '.join(BACKENDS)}, got '{gen_cfg.backend}'")
