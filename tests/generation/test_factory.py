"""Backend selection: HF options from the config, the vLLM install hint, model directories."""

from __future__ import annotations

import sys

import pytest

from reasoner.config import GenerationConfig, ModelConfig
from reasoner.errors import UserError
from reasoner.generation import HFGenerator
from reasoner.generation.factory import build_generator, export_model, local_model_dir


def test_hf_backend_takes_prefix_cache_options(model, tokenizer):
    gen = build_generator(GenerationConfig(batch_size=7, prefix_cache=True, prefix_cache_tokens=99), model, tokenizer)
    assert isinstance(gen, HFGenerator) and gen.batch_size == 7 and gen._prefix.max_tokens == 99
    assert build_generator(GenerationConfig(), model, tokenizer)._prefix is None
    # by default the store holds as many tokens as fit in prefix_cache_mb of this model's K/V
    c = model.config
    per_token = 2 * c.num_hidden_layers * c.num_key_value_heads * (c.hidden_size // c.num_attention_heads) * 4
    gen = build_generator(GenerationConfig(prefix_cache=True, prefix_cache_mb=2), model, tokenizer)
    assert gen._prefix.max_tokens == 2 * 2**20 // per_token


def test_missing_vllm_is_a_user_error_with_the_install_hint(model, tokenizer, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(UserError, match=r"pip install 'reasoner\[vllm\]'.*scripts/vllm_env.sh"):
        build_generator(GenerationConfig(backend="vllm"), model, tokenizer)


def test_unknown_backend(model, tokenizer):
    with pytest.raises(UserError, match="hf, vllm"):
        build_generator(GenerationConfig(backend="tgi"), model, tokenizer)


def test_local_model_dir_only_for_plain_hf_dirs(tmp_path, model, tokenizer):
    root = export_model(model, tokenizer, parent=str(tmp_path))
    plain = str(root / "model")
    assert (root / "model" / "config.json").is_file()
    assert local_model_dir(ModelConfig(name_or_path=plain)) == plain
    lora = ModelConfig(name_or_path=plain)
    lora.lora.enabled = True
    assert local_model_dir(lora) is None
    assert local_model_dir(ModelConfig(name_or_path="tiny-arith")) is None
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter" / "config.json").write_text("{}")
    assert local_model_dir(ModelConfig(name_or_path=str(tmp_path / "adapter"))) is None
