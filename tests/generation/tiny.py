"""Tiny in-memory models for generation tests: a character tokenizer and a random Llama whose
sharpened logits make greedy decoding free of near-ties (head_dim 32: vLLM's CPU kernels need
one of 32/64/80/...)."""

from __future__ import annotations

import string

import torch

PROMPTS = ["1+2=", "12*34+5=", "7", "100-99*3+8=", "(4+4)*2="]


def char_tokenizer():
    """Character-level fast tokenizer built in memory: <pad>=0, <s>=1, </s>=2, <unk>=3."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    chars = string.digits + string.ascii_letters + "+-*/=() .,:\n"
    vocab = {t: i for i, t in enumerate(specials + list(chars))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_llama(tokenizer, seed: int = 0, hidden: int = 64, heads: int = 2, kv_heads: int = 1, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
        model.lm_head.weight[2].fill_(0.0)  # no accidental EOS; tests that want EOS pick their own
    return model.eval()


def extend(prompt: str, text: str) -> str:
    """A search-style next prompt: the previous prompt plus a generated step and a newline."""
    return prompt + text + "\n"
