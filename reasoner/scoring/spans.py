"""Scorers that read the policy's own text (implicit PRM, value model) and ORM mode over any scorer."""

from __future__ import annotations

import torch

from reasoner.scoring.base import batched, check_shapes, context_limit, device_of, flat_index, pad_id, sigmoid, split_groups


class SpanScorer:
    """Shared by scorers that read the policy's own text: prompt + separator-joined steps."""

    separator: str

    def _encode(self, prompts, steps, limit):
        from reasoner.prm.tokenization import encode_spans, keep_last

        check_shapes(prompts, steps)
        seqs, spans = [], []
        for p, s in zip(prompts, steps):
            e = encode_spans(self.tokenizer, p, s, self.separator, cache=self._cache)
            ids, cut = keep_last(e.input_ids, limit)
            seqs.append(ids)
            spans.append([(max(a - cut, 1), max(b - cut, 1)) for a, b in e.spans])
        return seqs, spans


class ImplicitScorer(SpanScorer):
    """Implicit PRM: beta * summed log-ratio to the reference over each step's tokens."""

    def __init__(self, model, reference, tokenizer, spec, batch_size: int = 32):
        self.model, self.reference, self.tokenizer, self.spec = model, reference, tokenizer, spec
        self.separator, self.batch_size, self._cache = spec.step_separator, batch_size, {}

    @torch.inference_mode()
    def step_rewards(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """beta * sum over each step's tokens of (log pi - log pi_ref), unsquashed."""
        from reasoner.prm.model import reference_logprobs, token_logprobs

        seqs, spans = self._encode(prompts, steps, context_limit(self.model))

        def run(ids, mask, idx):
            groups = [[j for a, b in spans[i] for j in range(a, b)] for i in idx]
            if not any(groups):
                return [[0.0] * len(spans[i]) for i in idx]
            rows, cols = flat_index(groups)
            rows, cols = rows.to(ids.device), cols.to(ids.device)
            ratio = token_logprobs(self.model, ids, mask, rows, cols) - reference_logprobs(self.reference, ids, mask, rows, cols)
            per_token = split_groups((self.spec.beta * ratio).cpu().tolist(), groups)
            out = []
            for i, toks in zip(idx, per_token):
                k, sums = 0, []
                for a, b in spans[i]:
                    sums.append(sum(toks[k:k + b - a]))
                    k += b - a
                out.append(sums)
            return out

        return batched(seqs, self.batch_size, pad_id(self.tokenizer), device_of(self.model), run)

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        out = []
        for rewards in self.step_rewards(prompts, steps):
            if self.spec.implicit_score == "cumulative":
                rewards = [sum(rewards[:i + 1]) for i in range(len(rewards))]
            out.append([sigmoid(r) for r in rewards])
        return out

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return [sigmoid(sum(r)) if r else 0.0 for r in self.step_rewards(prompts, steps)]


class ValueScorer(SpanScorer):
    """A ValueModel's V at the last token of each step (the state after it), clipped to [0, 1]."""

    def __init__(self, model, tokenizer, separator: str = "\n", batch_size: int = 32):
        self.model, self.tokenizer, self.separator, self.batch_size, self._cache = model, tokenizer, separator, batch_size, {}

    @torch.inference_mode()
    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        seqs, spans = self._encode(prompts, steps, context_limit(self.model))

        def run(ids, mask, idx):
            values = self.model(ids, mask).clamp(0.0, 1.0).cpu()
            return [[float(values[r, b - 1]) for _a, b in spans[i]] for r, i in enumerate(idx)]

        return batched(seqs, self.batch_size, pad_id(self.tokenizer), device_of(self.model), run)

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return [s[-1] if s else 0.0 for s in self.score(prompts, steps)]


class OutcomeScorer:
    """ORM mode: score only the end; every step of a solution carries that one score."""

    def __init__(self, inner):
        self.inner = inner

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        outcome = self.inner.score_outcome(prompts, steps)
        return [[o] * len(s) for o, s in zip(outcome, steps)]

    def score_outcome(self, prompts: list[str], steps: list[list[str]]) -> list[float]:
        return self.inner.score_outcome(prompts, steps)
