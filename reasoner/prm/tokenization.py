"""PRM input tokenisation: pure functions (TRL style), shared by training and scoring.

Why one function for both: the position whose output a label trains must be the position the
scorer reads. OpenR trains on the token *before* the step tag and reads *at* the tag, an
off-by-one; here training and scoring call the same `encode_tagged` and use its `positions`.

Discriminative PRM input (the policy's text with a tag after every step)::

    prompt + step_1 + TAG + SEP + step_2 + TAG + SEP + ... + step_n + TAG

`positions[i]` is the index of the LAST token of the i-th tag: the logits there (over '+'/'-')
or the scalar head's output there is step i's score. Because the model is causal, step i's
score depends only on the prompt and steps 1..i.

Implicit PRM / value model input (exactly the text the policy generated)::

    prompt + step_1 + SEP + step_2 + ... + SEP + step_n

`spans[i] = (start, end)`: the token indices of step i, the separator *before* it included
(so a step's tokens do not change when a later step is appended). Token j's log-prob is read
from the logits at j - 1; a value model's V after step i is read at end - 1.

Each piece (prompt, step, tag, separator) is tokenised on its own, so step boundaries are exact
whatever the tokenizer merges; the prompt goes through `prompts.encode_prompt`, like the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasoner.errors import UserError

CACHE_LIMIT = 100_000  # pieces remembered per scorer (steps repeat a lot across samples)


@dataclass
class TaggedInput:
    input_ids: list[int]
    positions: list[int]  # one per (kept) step: where that step is scored and trained


@dataclass
class SpanInput:
    input_ids: list[int]
    spans: list[tuple[int, int]]  # one per (kept) step: [start, end) token indices


def _piece_ids(tokenizer, text: str, cache: dict | None = None) -> list[int]:
    if cache is not None and text in cache:
        return cache[text]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if cache is not None:
        if len(cache) >= CACHE_LIMIT:  # a long search run sees many distinct steps: stay bounded
            cache.clear()
        cache[text] = ids
    return ids


def _prompt_ids(tokenizer, prompt: str) -> list[int]:
    from reasoner.prompts import encode_prompt

    ids = encode_prompt(tokenizer, prompt)
    if not ids:
        raise UserError("PRM input: the prompt encodes to no tokens")
    return ids


def encode_tagged(tokenizer, prompt: str, steps: list[str], step_tag: str, separator: str,
                  max_length: int | None = None, cache: dict | None = None) -> TaggedInput:
    """Token ids of prompt + steps with a tag after each, and the scored position of each step.

    With max_length the sequence is cut on the right and steps whose tag is cut off are
    dropped from `positions` (training: those labels are not trained).
    """
    tag_ids = _piece_ids(tokenizer, step_tag, cache)
    if not tag_ids:
        raise UserError(f"prm.step_tag {step_tag!r} encodes to no tokens")
    sep_ids = _piece_ids(tokenizer, separator, cache) if separator else []
    ids = list(_prompt_ids(tokenizer, prompt))
    positions = []
    for i, step in enumerate(steps):
        if i:
            ids += sep_ids
        ids += _piece_ids(tokenizer, step, cache)
        ids += tag_ids
        positions.append(len(ids) - 1)
    if max_length is not None and len(ids) > max_length:
        ids = ids[:max_length]
        positions = [p for p in positions if p < max_length]
    return TaggedInput(ids, positions)


def tagged_step_ids(tokenizer, step: str, step_tag: str, separator: str, first: bool,
                    cache: dict | None = None) -> list[int]:
    """The ids `encode_tagged` appends for one step ([separator +] step + tag), so a scorer can
    extend an already encoded prefix by one step and get exactly the same sequence."""
    tag_ids = _piece_ids(tokenizer, step_tag, cache)
    if not tag_ids:
        raise UserError(f"prm.step_tag {step_tag!r} encodes to no tokens")
    sep_ids = _piece_ids(tokenizer, separator, cache) if separator and not first else []
    return sep_ids + _piece_ids(tokenizer, step, cache) + tag_ids


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's ids as every PRM input starts (`prompts.encode_prompt`, never empty)."""
    return list(_prompt_ids(tokenizer, prompt))


def encode_spans(tokenizer, prompt: str, steps: list[str], separator: str,
                 max_length: int | None = None, cache: dict | None = None) -> SpanInput:
    """Token ids of prompt + separator-joined steps, and each step's token span.

    With max_length the sequence is cut on the right; a step cut in two keeps its first part,
    a step cut off entirely is dropped from `spans`.
    """
    sep_ids = _piece_ids(tokenizer, separator, cache) if separator else []
    ids = list(_prompt_ids(tokenizer, prompt))
    spans = []
    for i, step in enumerate(steps):
        start = len(ids)
        if i:
            ids += sep_ids
        ids += _piece_ids(tokenizer, step, cache)
        spans.append((start, len(ids)))
    if max_length is not None and len(ids) > max_length:
        ids = ids[:max_length]
        spans = [(s, min(e, max_length)) for s, e in spans if s < max_length]
    return SpanInput(ids, spans)


def place_labels(positions: list[int], labels: list[float | None]) -> list[tuple[int, float]]:
    """(position, label) pairs for the steps that are trained: labelled and not truncated."""
    return [(p, float(v)) for p, v in zip(positions, labels) if v is not None]


def keep_last(ids: list[int], limit: int) -> tuple[list[int], int]:
    """Left-truncate to `limit` tokens for scoring past the model's context; returns (ids, cut).

    Positions shift by -cut; scorers clamp positions that fall off to the first kept token.
    """
    if limit <= 0 or len(ids) <= limit:
        return ids, 0
    cut = len(ids) - limit
    return ids[cut:], cut
