"""Character-level tokenizer for the tiny-arith preset.

One token per character keeps the tiny model's job simple (arithmetic is digit by digit) and
makes the tokenizer exactly invertible: `decode(encode(s)) == s` for printable ASCII, spaces,
tabs and newlines included. Characters outside the vocabulary become `<unk>`.

No special token is added by `encode` / `__call__`: the tiny model is trained from scratch, so
it needs no BOS, and callers that want `</s>` at the end of a target append `eos_token_id`
themselves. Padding side is the transformers default (right); generation code that batches
prompts sets `padding_side = "left"` itself.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARACTERS = [chr(c) for c in range(32, 127)] + ["\n", "\t"]


def char_vocab() -> dict[str, int]:
    """Specials first (ids 0-3: pad, bos, eos, unk), then space..~, newline, tab."""
    return {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}


def build_char_tokenizer(model_max_length: int | None = None) -> PreTrainedTokenizerFast:
    """A fast tokenizer with one id per character.

    A BPE model with no merges and no pre-tokenizer splits the whole text into single
    characters (whitespace included, so nothing is dropped); the Fuse decoder joins tokens
    with no separator, so decoding never inserts spaces.
    """
    backend = Tokenizer(models.BPE(vocab=char_vocab(), merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    kwargs = {"model_max_length": model_max_length} if model_max_length else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        **kwargs,
    )
