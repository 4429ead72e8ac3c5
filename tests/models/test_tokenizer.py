"""models/tokenizer.py: a saved tokenizer loads back as the same tokenizer, whatever the model type."""

from __future__ import annotations

import json

import pytest

from reasoner.config import ModelConfig, TinyConfig
from reasoner.models import load_policy, load_tokenizer, load_value_model, save_model

SMALL = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
TEXT = "Step 1: 12+30=42 ки\n\tx ~ ки"  # the PRM step tag, ASCII around it


def tiny(arch: str, name_or_path: str = "tiny-arith") -> ModelConfig:
    cfg = ModelConfig(name_or_path=name_or_path, device="cpu")
    cfg.tiny = TinyConfig(arch=arch, **SMALL)
    return cfg


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_tokenizer_survives_save_model_for_every_arch(tmp_path, arch):
    """AutoTokenizer swaps a qwen2 directory's tokenizer for Qwen2Tokenizer, whose byte-level
    pre-tokenizer encoded the step tag ' ки' to nothing; the saved tokenizer.json is the tokenizer."""
    model, tok = load_policy(tiny(arch))
    out = save_model(model, tok, tmp_path / "plain")
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    expected = tok.encode(TEXT, add_special_tokens=False)
    for again in (load_tokenizer(tiny(arch, str(out))), load_policy(tiny(arch, str(out)))[1]):
        assert again.encode(TEXT, add_special_tokens=False) == expected
        assert again.encode(" ки", add_special_tokens=False) == tok.encode(" ки", add_special_tokens=False) != []
        assert again.decode(expected) == tok.decode(expected)
        assert (again.pad_token_id, again.eos_token_id, again.model_max_length) == (tok.pad_token_id, tok.eos_token_id, tok.model_max_length)


def test_tiny_qwen2_prm_and_value_dirs_keep_the_step_tag(tmp_path):
    from reasoner.prm.model import PRMSpec, load_prm, save_prm

    model, tok = load_policy(tiny("qwen2"))
    expected = tok.encode(TEXT, add_special_tokens=False)
    prm = load_prm(save_prm(model, tok, PRMSpec(), tmp_path / "prm"), device="cpu")
    assert prm.tokenizer.encode(TEXT, add_special_tokens=False) == expected
    value = save_model(load_value_model(tiny("qwen2"), model), tok, tmp_path / "value")
    assert load_tokenizer(tiny("qwen2", str(value))).encode(TEXT, add_special_tokens=False) == expected


def test_a_named_tokenizer_class_is_still_loaded_through_autotokenizer(tmp_path):
    """Only the generic tokenizer.json classes are loaded as is; a model type's own class stays."""
    from transformers import AutoTokenizer

    model, tok = load_policy(tiny("llama"))
    out = save_model(model, tok, tmp_path / "named")
    conf_path = out / "tokenizer_config.json"
    conf = json.loads(conf_path.read_text())
    conf["tokenizer_class"] = "LlamaTokenizer"
    conf_path.write_text(json.dumps(conf))
    assert type(load_tokenizer(tiny("llama", str(out)))) is type(AutoTokenizer.from_pretrained(out))


CHAT = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"


def test_a_chat_template_survives_save_and_load(tmp_path):
    """A fine-tuned chat model must get its chat template back, or its prompts go out raw:
    transformers 5 writes it to chat_template.jinja, which the generic loader did not read."""
    from reasoner.prompts import build_prompt

    model, tok = load_policy(tiny("llama"))
    tok.chat_template = CHAT
    out = save_model(model, tok, tmp_path / "chat")
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == CHAT
    again = load_tokenizer(tiny("llama", str(out)))
    assert again.chat_template == CHAT
    assert build_prompt("1+1", again, system_prompt="s") == "<system>s<user>1+1<a>"
    # a directory written elsewhere, with only the .jinja file, reads it too
    conf = json.loads((out / "tokenizer_config.json").read_text())
    del conf["chat_template"]
    (out / "tokenizer_config.json").write_text(json.dumps(conf))
    (out / "chat_template.jinja").write_text(CHAT)
    assert load_tokenizer(tiny("llama", str(out))).chat_template == CHAT
