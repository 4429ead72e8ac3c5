"""train-sft learns (loss falls, every trained parameter moves) and resumes exactly after a crash."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from reasoner import config
from reasoner.stages import sft
from reasoner.train import sft as sft_recipe
from tests.conftest import TINY


def sft_cfg(tmp_path, *extra):
    return config.load("train_sft", TINY + [
        f"run_dir={tmp_path}", "data.num_problems=64", "batch_size=8", "log_every=1",
        "optim.lr=3e-3", "optim.warmup_steps=2", *extra,
    ])


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def final_weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


def test_sft_lowers_loss_and_changes_every_parameter(tmp_path):
    from reasoner.models import load_policy

    cfg = sft_cfg(tmp_path, "max_steps=30")
    base, _ = load_policy(cfg.model)
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    sft.run(cfg)
    curve = losses(tmp_path)
    assert len(curve) == 30
    assert sum(curve[-5:]) / 5 < 0.7 * sum(curve[:5]) / 5
    after = final_weights(tmp_path)
    unchanged = [n for n, w in before.items() if n in after and torch.equal(after[n], w)]
    assert not unchanged, f"parameters not trained: {unchanged}"
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "run.json").is_file()
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["version"] and "git_sha" in meta


def test_sft_with_lora_trains_only_the_adapter(tmp_path):
    cfg = sft_cfg(tmp_path, "max_steps=5", "model.lora.enabled=true", "model.lora.r=4")
    sft.run(cfg)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "final" / "model.safetensors").is_file()


def test_sft_resumes_exactly_after_a_crash(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    sft.run(sft_cfg(whole, "max_steps=6", "save_every=3"))

    crashed = tmp_path / "crashed"
    real_loss = sft_recipe.response_loss
    calls = {"n": 0}

    def crash_on_fifth_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("simulated crash")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(sft_recipe, "response_loss", crash_on_fifth_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sft.run(sft_cfg(crashed, "max_steps=6", "save_every=3"))
    monkeypatch.setattr(sft_recipe, "response_loss", real_loss)
    sft.run(sft_cfg(crashed, "max_steps=6", "save_every=3"))

    assert losses(crashed) == pytest.approx(losses(whole), rel=1e-5)
    a, b = final_weights(whole), final_weights(crashed)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
