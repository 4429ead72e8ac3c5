"""The KV-cache argument: picked from the forward signature (new `cache` or old `past_key_values`),
and none of our cache-passing call sites trips a transformers deprecation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pytest
import torch

from reasoner import config
from reasoner.generation.kv_args import cache_argument, cache_kwargs, returned_cache
from tests.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")


class _OldForward(torch.nn.Module):
    """The forward of a transformers 5.x release before the rename."""

    def forward(self, input_ids=None, past_key_values=None, use_cache=None, logits_to_keep=0):
        return input_ids


class _NewForward(torch.nn.Module):
    def forward(self, input_ids=None, cache=None, use_cache=None, **kwargs):
        return input_ids


class _NoCache(torch.nn.Module):
    def forward(self, input_ids=None):
        return input_ids


@dataclass
class _OldOutput:
    logits: torch.Tensor | None = None
    past_key_values: object = None


@dataclass
class _NewOutput:
    logits: torch.Tensor | None = None
    cache: object = None


class _Wrapper(torch.nn.Module):
    """Like a PEFT model: forwards keyword arguments to its base model."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def get_base_model(self):
        return self.base

    def forward(self, *args, **kwargs):
        return self.base(*args, **kwargs)


def test_the_argument_name_comes_from_the_forward_signature():
    marker = object()
    assert cache_kwargs(_OldForward(), marker) == {"past_key_values": marker, "use_cache": True}
    assert cache_kwargs(_NewForward(), marker) == {"cache": marker, "use_cache": True}
    assert cache_argument(_Wrapper(_OldForward())) == "past_key_values"
    assert cache_argument(_NoCache()) is None
    with pytest.raises(TypeError, match="_NoCache.forward takes no KV cache"):
        cache_kwargs(_NoCache(), marker)


def test_the_returned_cache_is_read_under_either_field():
    marker, default = object(), object()
    assert returned_cache(_OldOutput(past_key_values=marker)) is marker
    assert returned_cache(_NewOutput(cache=marker)) is marker
    assert returned_cache(_NewOutput(), default) is default
    assert returned_cache(_OldOutput(), default) is default


def test_the_installed_transformers_models_take_their_cache_under_the_name_we_pass():
    """Whatever the installed version calls it, tiny Llama and Qwen2 (and their decoders) take it."""
    from reasoner.models import load_policy

    for arch in ("llama", "qwen2"):
        model, _ = load_policy(config.load("train_rl", [*TINY, f"model.tiny.arch={arch}"]).model)
        assert cache_argument(model) in ("cache", "past_key_values")
        assert cache_argument(model.get_decoder()) == cache_argument(model)


@pytest.fixture
def no_deprecated_cache_names(monkeypatch):
    """FutureWarnings raise, and so does reading an output's old `past_key_values` field on a
    transformers whose outputs call it `cache` (that path only logs once, so it is patched)."""
    from transformers.utils.generic import ModelOutput

    if isinstance(getattr(ModelOutput, "past_key_values", None), property):
        def deprecated(self):
            raise AssertionError("read output.past_key_values; this transformers calls it output.cache")

        monkeypatch.setattr(ModelOutput, "past_key_values", property(deprecated))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        yield


def test_our_cache_call_sites_raise_no_deprecation_warning(no_deprecated_cache_names):
    """A decode (HF forward and lean step, with prefix-cache hits), a shared-prompt training
    forward + backward, an OREO step and a PRM path-cache extension, all with FutureWarning as
    an error."""
    from reasoner.generation.base import SamplingParams
    from reasoner.generation.hf import HFGenerator
    from reasoner.models import load_policy
    from reasoner.offline.data import Sequence
    from reasoner.algos.offline.oreo import OREO
    from reasoner.prm.path_cache import forward_cached, takes_plain_cache
    from reasoner.rl.batch import _shared_prompts, build_batch, response_logits

    cfg = config.load("train_rl", [*TINY, "algo=oreo"])
    torch.manual_seed(0)
    policy, tok = load_policy(cfg.model)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=0)
    for lean in (False, True):
        gen = HFGenerator(policy, tok, batch_size=4, prefix_cache=True, lean_decode=lean)
        first = gen.generate(["Compute: 1 + 2"], params)[0][0]
        gen.generate(["Compute: 1 + 2" + tok.decode(first.token_ids)], params)  # a prefix-store hit

    prompt = tok("Compute: 1 + 2")["input_ids"]
    batch = build_batch([prompt] * 3, [tok(t, add_special_tokens=False)["input_ids"] for t in ("3", "1 + 2", "4")],
                        pad_id=tok.pad_token_id)
    policy.train()
    assert _shared_prompts(policy, batch) is not None
    response_logits(policy, batch).float().logsumexp(-1).sum().backward()
    policy.zero_grad(set_to_none=True)

    ids = tok("1 + 2 = 3\nAnswer: 3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    seqs = [Sequence("p", prompt, ids, [0] * 9 + [1] * (len(ids) - 9), r) for r in (1.0, 0.0)]
    oreo = OREO(cfg)
    oreo.setup(policy, cfg.model, cfg.model, tok.pad_token_id, total_steps=1)
    assert torch.isfinite(torch.tensor(oreo.update(seqs)["loss"]))

    policy.eval()
    assert takes_plain_cache(policy)
    with torch.inference_mode():
        x = torch.tensor([prompt])
        _, layers = forward_cached(policy, x, torch.ones_like(x), torch.arange(x.shape[1])[None], None)
        past = [(layer.keys, layer.values) for layer in layers]
        step = torch.tensor([ids[:3]])
        hidden, layers = forward_cached(policy, step, torch.ones(1, x.shape[1] + 3, dtype=torch.long),
                                        torch.arange(x.shape[1], x.shape[1] + 3)[None], past)
    assert hidden.shape[:2] == (1, 3) and layers[0].keys.shape[-2] == x.shape[1] + 3
