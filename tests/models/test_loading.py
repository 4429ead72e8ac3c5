"""models/loading.py and models/provenance.py: load(cfg) -> LoadedModel, and the base an adapter names."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from reasoner.config import LoraConfig, ModelConfig, TinyConfig
from reasoner.models import LoadedModel, Source, load, load_policy, plain_copy, provenance, save_model

SMALL = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
ROOT = Path(__file__).resolve().parents[2] / "reasoner"


def tiny(name_or_path: str = "tiny-arith", lora: bool = False) -> ModelConfig:
    cfg = ModelConfig(name_or_path=name_or_path, device="cpu")
    cfg.tiny = TinyConfig(**SMALL)
    if lora:
        cfg.lora = LoraConfig(enabled=True, r=4, alpha=8)
    return cfg


def test_load_says_where_the_model_came_from_and_what_an_adapter_would_name(tmp_path):
    preset = load(tiny())
    assert isinstance(preset, LoadedModel) and preset.source == Source("preset", "tiny-arith")
    assert preset.base_ref is None  # random init: an adapter on it saves a copy in base/
    plain = save_model(preset.model, preset.tokenizer, tmp_path / "plain")
    again = load(tiny(str(plain), lora=True))
    assert again.source == Source("hf", str(plain.resolve())) and again.base_ref == str(plain.resolve())
    adapter = save_model(again.model, again.tokenizer, tmp_path / "adapter")
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == again.base_ref
    chained = load(tiny(str(adapter)))
    assert chained.source.kind == "adapter" and chained.base_ref == str(adapter.resolve())


def test_load_policy_is_load_as_a_pair():
    model, tokenizer = load_policy(tiny())
    loaded = load(tiny())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded.model(ids).logits)
    assert tokenizer.get_vocab() == loaded.tokenizer.get_vocab()


def test_provenance_reads_through_peft_and_survives_plain_copies(tmp_path):
    loaded = load(tiny())
    save_model(loaded.model, loaded.tokenizer, tmp_path / "plain")
    peft = load(tiny(str(tmp_path / "plain"), lora=True)).model
    assert provenance.base_ref(peft) == str((tmp_path / "plain").resolve())
    for merge in (True, False):
        assert provenance.base_ref(plain_copy(peft, merge=merge)) == provenance.base_ref(peft)


def test_only_the_provenance_module_touches_the_attribute():
    users = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*.py") if provenance.ATTRIBUTE in p.read_text())
    assert users == ["models/provenance.py"]
