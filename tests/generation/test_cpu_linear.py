"""Packed oneDNN linears: same outputs as F.linear, repacked after weight updates, restored after."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reasoner.generation import cpu_linear
from reasoner.generation.cpu_linear import PackedLinears

pytestmark = pytest.mark.skipif(not cpu_linear.available(), reason="this torch build has no oneDNN packed linear")


@pytest.fixture(autouse=True)
def small_thresholds(monkeypatch):
    """Patch even these small layers and calls, so the tests stay fast."""
    monkeypatch.setattr(cpu_linear, "MIN_WEIGHT_ELEMENTS", 1)
    monkeypatch.setattr(cpu_linear, "MIN_ROWS", 1)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8, bias=False)).eval()


def test_same_outputs_and_forward_restored():
    net, x = _net(), torch.randn(5, 3, 16)
    ref = net(x)
    packs = PackedLinears(batch_hint=5)
    with torch.inference_mode(), packs.activate(net) as n:
        assert n == 2
        assert "forward" in net[0].__dict__
        out = net(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert "forward" not in net[0].__dict__ and "forward" not in net[2].__dict__


def test_repacks_after_in_place_update_and_skips_grad_mode():
    net, x = _net(), torch.randn(4, 16)
    packs = PackedLinears()
    with torch.inference_mode(), packs.activate(net):
        net(x)
    with torch.no_grad():
        net[0].weight.mul_(2.0)  # an optimizer step, in place
    with torch.inference_mode(), packs.activate(net):
        out = net(x)
    assert torch.allclose(out, net(x), atol=1e-5)
    with packs.activate(net):  # autograd on: plain F.linear, gradients flow
        net(x).sum().backward()
    assert net[0].weight.grad is not None


def test_only_plain_cpu_linears_are_patched(monkeypatch):
    class MyLinear(nn.Linear):
        pass

    net = nn.Sequential(MyLinear(4, 4), nn.Linear(4, 4).to(torch.float64))
    with torch.inference_mode(), PackedLinears().activate(net) as n:
        assert n == 0
    monkeypatch.setattr(cpu_linear, "MIN_WEIGHT_ELEMENTS", 300)  # 16 x 32 = 512 >= 300 > 32 x 8
    with torch.inference_mode(), PackedLinears().activate(_net()) as n:
        assert n == 1


def test_few_rows_use_f_linear(monkeypatch):
    monkeypatch.setattr(cpu_linear, "MIN_ROWS", 4)
    net, calls = _net(), []
    real = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(1) or real(*a))
    with torch.inference_mode(), PackedLinears().activate(net):
        net(torch.randn(2, 16))
        assert not calls
        net(torch.randn(4, 16))
        assert len(calls) == 2


def test_hf_generator_same_greedy_with_and_without_packing():
    from reasoner.generation import HFGenerator, SamplingParams
    from tests.generation.tiny import PROMPTS, char_tokenizer, tiny_llama

    tok = char_tokenizer()
    model = tiny_llama(tok)
    params = SamplingParams(temperature=0.0, max_new_tokens=10, n=2)
    fast = HFGenerator(model, tok, fast_linear=True).generate(PROMPTS, params)
    plain = HFGenerator(model, tok, fast_linear=False).generate(PROMPTS, params)
    for a, b in zip([c for r in fast for c in r], [c for r in plain for c in r]):
        assert a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert all("forward" not in m.__dict__ for m in model.modules())
