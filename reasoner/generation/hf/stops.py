"""Stop strings (vLLM semantics: the text is cut before the first one) checked while decoding,
and fast batched decoding of token ids to text."""

from __future__ import annotations

from reasoner.generation.base import find_stop
from reasoner.generation.hf.chunks import Seq

try:  # transformers 5: the tokenizers-backed tokenizer class
    from transformers.tokenization_utils_tokenizers import TokenizersBackend
except ImportError:  # pragma: no cover - transformers 4.x: batch_decode is used as is
    TokenizersBackend = None


class StopChecker:
    """Incremental stop-string detection on a short decoded tail per sequence.

    A stop string of b UTF-8 bytes overlaps at most b tokens (each token adds >= 1 byte), so
    decoding the last b + 2 tokens is enough; a hit is confirmed on the full text, which is what
    gets cut, so the tail is only a cheap filter. Its verdict per window of ids is remembered
    in `memo` (shared across calls with the same stops): search decodes a few tokens per
    sequence per call, and the same windows come back again and again.
    """

    MEMO_LIMIT = 100_000

    def __init__(self, tokenizer, stops: list[str], memo: dict | None = None):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.window = max(len(s.encode("utf-8")) for s in self.stops) + 2 if self.stops else 0
        self.memo = {} if memo is None else memo

    def check(self, step: int, toks: list[int], slot_list: list[int], seqs: list[Seq]) -> int:
        rows = []
        for r, t in enumerate(toks):
            s = seqs[slot_list[r]]
            if s.end is None or s.end == step:
                s.hist.append(t)
            if s.end is None:
                rows.append(s)
        if not rows or not self.stops:
            return 0
        windows = [tuple(s.hist[-self.window :]) for s in rows]
        if len(self.memo) > self.MEMO_LIMIT:  # stay bounded over a long run
            self.memo.clear()
        self._judge([w for w in dict.fromkeys(windows) if w not in self.memo])
        rows = [s for s, w in zip(rows, windows) if self.memo[w]]
        if not rows:
            return 0
        ended = 0  # confirm on the full texts, decoded in one call (search ends many rows per step)
        for s, full in zip(rows, decode_batch(self.tokenizer, [s.hist for s in rows])):
            hit = find_stop(full, self.stops)
            if hit is not None:
                s.end, s.finish_reason, s.stop_reason, s.text = step, "stop", hit[1], full[: hit[0]]
                ended += 1
        return ended

    def _judge(self, windows: list[tuple[int, ...]]) -> None:
        """Decode unseen windows (one call) and remember whether each holds a stop string."""
        if not windows:
            return
        tails = decode_batch(self.tokenizer, [list(w) for w in windows])
        for w, tail in zip(windows, tails):
            self.memo[w] = find_stop(tail, self.stops) is not None


def decode_batch(tokenizer, seqs: list[list[int]]) -> list[str]:
    """`tokenizer.batch_decode(seqs, skip_special_tokens=True)`, straight from the `tokenizers`
    backend when that is all it would do: transformers first walks every id of every sequence
    to type-check it (`to_py_obj`), which cost a wide beam search ~0.3 s of ~8 s."""
    backend = getattr(tokenizer, "_tokenizer", None)
    plain = (TokenizersBackend is not None and type(tokenizer)._decode is TokenizersBackend._decode
             and type(tokenizer).batch_decode is TokenizersBackend.batch_decode
             and not getattr(tokenizer, "clean_up_tokenization_spaces", True))
    if backend is not None and plain and hasattr(backend, "decode_batch"):
        return backend.decode_batch(seqs, skip_special_tokens=True)
    return tokenizer.batch_decode(seqs, skip_special_tokens=True)
