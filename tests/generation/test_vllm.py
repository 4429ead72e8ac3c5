"""VLLMGenerator against HFGenerator on a tiny saved model (runs in the vLLM lane:
`bash scripts/vllm_lane.sh`; skipped where vllm is not importable).

The engine runs in this process (VLLMGenerator's default, which sets
VLLM_ENABLE_V1_MULTIPROCESSING=0 while it starts), so pytest needs no `__main__` guard; one
engine serves the whole module and `update_weights` switches models between tests.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from reasoner.generation import HFGenerator, SamplingParams
from tests.generation.tiny import PROMPTS, tiny_llama

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (run scripts/vllm_lane.sh)"),
]


@pytest.fixture(scope="module")
def model_a(tokenizer):
    return tiny_llama(tokenizer, seed=0)


@pytest.fixture(scope="module")
def model_b(tokenizer):
    return tiny_llama(tokenizer, seed=1)


@pytest.fixture(scope="module")
def vgen(tokenizer, model_a, tmp_path_factory):
    from reasoner.generation.vllm import VLLMGenerator
    from reasoner.models import save_model

    path = save_model(model_a, tokenizer, tmp_path_factory.mktemp("vllm") / "tiny")
    gen = VLLMGenerator(path, tokenizer, dtype="float32", seed=0, enforce_eager=True)
    yield gen
    gen.close()


@pytest.fixture
def on_a(vgen, model_a):
    """Tests that change the engine's weights put model A back afterwards."""
    yield
    vgen.update_weights(model_a)


def _greedy(max_new=12, **kw):
    return SamplingParams(temperature=0.0, max_new_tokens=max_new, **kw)


@torch.no_grad()
def _reference_logprobs(model, tokenizer, prompt, gen_ids):
    ids = tokenizer(prompt)["input_ids"]
    logp = torch.log_softmax(model(torch.tensor([ids + gen_ids])).logits[0].float(), dim=-1)
    return [float(logp[len(ids) - 1 + k, t]) for k, t in enumerate(gen_ids)]


def _assert_same(ours, ref, atol=1e-4):
    for a_row, b_row in zip(ours, ref):
        assert len(a_row) == len(b_row)
        for a, b in zip(a_row, b_row):
            assert a.token_ids == b.token_ids
            assert (a.text, a.finish_reason, a.stop_reason) == (b.text, b.finish_reason, b.stop_reason)
            assert a.logprobs == pytest.approx(b.logprobs, abs=atol)


def test_greedy_equals_hf_backend(vgen, model_a, tokenizer):
    params = _greedy()
    _assert_same(vgen.generate(PROMPTS, params), HFGenerator(model_a, tokenizer).generate(PROMPTS, params))


def test_stop_strings_match_hf_backend(vgen, model_a, tokenizer):
    full = HFGenerator(model_a, tokenizer).generate(PROMPTS, _greedy(16))
    stops = ["@never@", full[1][0].text[4:6], full[3][0].text[2:3]]
    params = _greedy(16, stop=stops)
    ours = vgen.generate(PROMPTS, params)
    _assert_same(ours, HFGenerator(model_a, tokenizer).generate(PROMPTS, params))
    assert any(r[0].stop_reason in stops for r in ours)


def test_n_samples_and_logprobs_under_the_raw_model(vgen, model_a, tokenizer):
    params = SamplingParams(n=3, temperature=0.7, top_p=0.9, max_new_tokens=10, seed=1)
    out = vgen.generate(PROMPTS[:3], params)
    assert [len(r) for r in out] == [3, 3, 3]
    for prompt, comps in zip(PROMPTS, out):
        for c in comps:
            assert len(c.logprobs) == len(c.token_ids) == 10 and c.finish_reason == "length"
            ref = _reference_logprobs(model_a, tokenizer, prompt, c.token_ids)
            assert c.logprobs == pytest.approx(ref, abs=1e-4)
    greedy = vgen.generate(PROMPTS[:2], _greedy(8, n=3))
    assert all(len({tuple(c.token_ids) for c in r}) == 1 for r in greedy)


def test_seeded_sampling_is_reproducible(vgen):
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=123)
    prompts = PROMPTS + [PROMPTS[0]]
    a, b = vgen.generate(prompts, params), vgen.generate(prompts, params)
    c = vgen.generate(prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=7))
    assert a == b
    ids = lambda r: [x.token_ids for row in r for x in row]  # noqa: E731
    assert ids(a) != ids(c)
    assert [x.token_ids for x in a[0]] != [x.token_ids for x in a[-1]]  # a repeated prompt gets new samples
    assert len({tuple(x.token_ids) for x in a[0]}) == 2


def test_weight_update_switches_model_and_drops_cached_prefixes(vgen, model_b, tokenizer, on_a):
    vgen.generate(PROMPTS, _greedy())  # fills the prefix cache with model A's K/V
    vgen.update_weights(model_b)
    _assert_same(vgen.generate(PROMPTS, _greedy()), HFGenerator(model_b, tokenizer).generate(PROMPTS, _greedy()))


def test_eos_ends_like_hf_backend(vgen, model_a, tokenizer, on_a):
    import copy

    full = HFGenerator(model_a, tokenizer).generate(PROMPTS, _greedy(16))
    eos_like = full[1][0].token_ids[3]
    model_c = copy.deepcopy(model_a)
    with torch.no_grad():  # EOS outscores that token wherever it would win with a positive logit
        model_c.lm_head.weight[2] = 1.5 * model_c.lm_head.weight[eos_like]
    vgen.update_weights(model_c)
    ours = vgen.generate(PROMPTS, _greedy(16))
    _assert_same(ours, HFGenerator(model_c, tokenizer).generate(PROMPTS, _greedy(16)))
    ended = [r[0] for r in ours if r[0].finish_reason == "stop"]
    assert ended and all(c.token_ids[-1] == 2 and c.stop_reason is None for c in ended)


def test_lora_model_is_merged_on_update(vgen, model_a, tokenizer, on_a):
    import copy

    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(model_a), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    peft_model.eval()
    vgen.update_weights(peft_model)
    _assert_same(vgen.generate(PROMPTS, _greedy()), HFGenerator(peft_model, tokenizer).generate(PROMPTS, _greedy()))
    assert not hasattr(peft_model.base_model.model.model.layers[0].self_attn.q_proj, "merged") or \
        not peft_model.base_model.model.model.layers[0].self_attn.q_proj.merged


def test_edge_cases(vgen):
    assert vgen.generate([], SamplingParams()) == []
    empty = vgen.generate(["1+1="], _greedy(0, n=2))
    assert [[c.token_ids for c in r] for r in empty] == [[[], []]]
    with pytest.raises(ValueError):
        vgen.generate(["1"], SamplingParams(top_p=0.0))
    long = vgen.generate(["1" * 250], _greedy(50))[0][0]  # max_model_len 256: capped, not an error
    assert len(long.token_ids) <= 256 - 251 and long.finish_reason == "length"


def test_seeded_call_larger_than_one_engine_step(vgen):
    """More prompt tokens than one engine step takes: on CPU vLLM would chunk the prefill and
    rewind a seeded CPU generator, which crashes; VLLMGenerator turns chunking off there."""
    prompts = [f"{i}+" + "1" * 200 for i in range(48)]  # ~9.7k prompt tokens
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=4, seed=3)
    first, again = vgen.generate(prompts, params), vgen.generate(prompts, params)
    assert [[c.token_ids for c in r] for r in first] == [[c.token_ids for c in r] for r in again]


def test_factory_exports_in_memory_model(model_a, tokenizer, vgen):
    """build_generator with no model_dir saves the model to a temporary directory for vLLM."""
    from reasoner.config import GenerationConfig
    from reasoner.generation.factory import build_generator

    gen = build_generator(GenerationConfig(backend="vllm", vllm={"enforce_eager": True}), model_a, tokenizer)
    try:
        _assert_same(gen.generate(PROMPTS, _greedy()), HFGenerator(model_a, tokenizer).generate(PROMPTS, _greedy()))
    finally:
        gen.close()


def test_unsupported_cpu_head_size_is_a_user_error(tokenizer, tmp_path):
    from reasoner.errors import UserError
    from reasoner.generation.vllm import VLLMGenerator, _on_cpu
    from reasoner.models import save_model

    if not _on_cpu():
        pytest.skip("head sizes are only restricted on vLLM's CPU backend")
    path = save_model(tiny_llama(tokenizer, hidden=32, heads=2), tokenizer, tmp_path / "head16")
    with pytest.raises(UserError, match="head size 16"):
        VLLMGenerator(path, tokenizer)


def test_online_rl_steps_on_vllm_push_the_trained_weights(vgen, tmp_path):
    """`train-rl generation.backend=vllm`: rollouts come from the engine, and after each update
    the engine samples from the trained weights (greedy equals the HF backend on the trained model)."""
    from pathlib import Path

    from reasoner import config
    from reasoner.models import load_policy
    from reasoner.algos.registry import get_algorithm
    from reasoner.rl.recipe import OnlineRecipe
    from reasoner.rl.rewards import RewardModel
    from reasoner.tasks import get_task

    cfg = config.load("train_rl", [f"model.name_or_path={vgen.model_dir}", "model.chat_template=none", "data.num_problems=8",
                                   "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=12", "batch_size=8",
                                   "generation.backend=vllm", "generation.vllm.enforce_eager=true", "optim.lr=1e-2",
                                   "reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum",
                                   "steps=2", "eval_every=0", "save_every=0", f"run_dir={tmp_path / 'rl'}"])
    model, tok = load_policy(cfg.model)
    task = get_task("arith")
    before = [p.detach().clone() for p in model.parameters()]
    trainer = OnlineRecipe(cfg, get_algorithm("grpo")(cfg), model, tok, task.load_problems(cfg.data), task,
                           RewardModel(cfg.reward, task))
    Path(cfg.run_dir).mkdir(parents=True)
    trainer.setup(Path(cfg.run_dir))
    try:
        for step in range(2):
            metrics = trainer.train_step(step).metrics
            assert metrics["rollouts"] > 0 and "loss" in metrics
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
        trainer.generator.update_weights(model)
        ours = trainer.generator.generate(PROMPTS, _greedy())
        ref = HFGenerator(model, tok).generate(PROMPTS, _greedy())
        assert [[c.token_ids for c in row] for row in ours] == [[c.token_ids for c in row] for row in ref]
    finally:
        trainer.generator.close()


def test_collect_with_shepherd_labels_runs_on_vllm(vgen, tmp_path):
    """`reasoner collect generation.backend=vllm` end to end on the gym, rollouts included (its
    own engine; last in the module, as closing an engine tears down vLLM's process-wide state)."""
    import json

    from reasoner import config
    from reasoner.stages.collect import run

    cfg = config.load("collect", [f"model.name_or_path={vgen.model_dir}", "model.chat_template=none", "data.num_problems=4", "generation.n=4",
                                  "generation.max_new_tokens=48", "labels=shepherd", "labels.rollouts=2", "generation.backend=vllm",
                                  "generation.vllm.enforce_eager=true", f"run_dir={tmp_path / 'run'}"])
    run(cfg)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    assert summary["problems"] == 4 and summary["samples"] == 16 and len(rows) == 16
    assert summary["rollouts"] > 0 and len({r["id"] for r in rows}) == 16
