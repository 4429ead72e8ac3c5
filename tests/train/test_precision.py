"""optim.precision: bf16 autocast around training steps, fp32 attention on CPU inside it,
generation outside it, a typo refused, and every trainer still learning under it."""

from __future__ import annotations

import json

import pytest
import torch

from reasoner import config
from reasoner.errors import UserError
from reasoner.train.precision import FP32_SDPA, Precision, check_precision, use_fp32_attention
from tests.conftest import TINY


def tiny_model():
    from reasoner.models import load_policy

    return load_policy(config.load("train_sft", TINY).model)


def qkv(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 2, 5, 8, generator=g)
    k = torch.randn(2, 1, 5, 8, generator=g)  # grouped-query: 1 kv head for 2 query heads
    v = torch.randn(2, 1, 5, 8, generator=g)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def test_a_precision_typo_is_one_line_before_anything_runs():
    check_precision("bf16")
    with pytest.raises(UserError, match="optim.precision must be one of fp32, bf16, got 'bf61'"):
        check_precision("bf61")
    for command in ("train_sft", "train_prm", "train_rl"):
        with pytest.raises(UserError, match="optim.precision"):
            config.load(command, ["optim.precision=fp16"])


def test_fp32_keeps_the_model_and_runs_no_autocast():
    model, _ = tiny_model()
    prec = Precision("fp32", [model])
    assert model.config._attn_implementation == "sdpa"
    with prec.region():
        assert not torch.is_autocast_enabled("cpu")


def test_bf16_on_cpu_switches_attention_and_autocasts_the_step():
    model, _ = tiny_model()
    prec = Precision("bf16", [model])
    assert model.config._attn_implementation == FP32_SDPA
    with prec.region():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_fp32_sdpa_is_plain_sdpa_outside_autocast_and_fp32_inside():
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    model, _ = tiny_model()
    use_fp32_attention(model)
    module = model.model.layers[0].self_attn
    fn = AttentionInterface()[FP32_SDPA]
    q, k, v = qkv()
    plain = sdpa_attention_forward(module, q, k, v, None, scaling=0.3)[0]
    assert torch.equal(fn(module, q, k, v, None, scaling=0.3)[0], plain)  # bit-identical outside autocast
    qb, kb, vb = qkv(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(module, qb, kb, vb, None, scaling=0.3)[0]
    want = sdpa_attention_forward(module, qb.float(), kb.float(), vb.float(), None, scaling=0.3)[0]
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), want.to(torch.bfloat16).float())  # fp32 maths, rounded once


def test_the_switched_model_gives_bit_identical_logits_outside_autocast():
    """Padding, a shared prompt prefix with a KV cache, and the full pass: the masks must be sdpa's."""
    from reasoner.rl.batch import _full_logits, build_batch, response_logits

    model, _ = tiny_model()
    batch = build_batch([[5, 6, 7, 8]] * 3 + [[9, 10]] * 3, [[12, 13, 14], [15, 16], [17], [18, 19, 20, 21], [22], [23, 24]], 0)
    before = (response_logits(model, batch), _full_logits(model, batch))
    use_fp32_attention(model)
    after = (response_logits(model, batch), _full_logits(model, batch))
    for b, a in zip(before, after):
        assert torch.equal(b, a)


def test_bf16_forward_backward_is_close_to_fp32_and_grads_stay_fp32():
    from reasoner.rl.batch import build_batch, response_logprobs

    model, _ = tiny_model()
    batch = build_batch([[5, 6, 7, 8]] * 2 + [[9, 10, 11]] * 2, [[12, 13, 14], [15, 16], [17], [18, 19, 20]], 0)
    grads = {}
    for precision in ("fp32", "bf16"):
        Precision(precision, [model])
        model.zero_grad()
        with Precision(precision).region():
            logp = response_logprobs(model, batch)[0]
        (logp * batch.response_mask).sum().backward()
        grads[precision] = [p.grad.clone() for p in model.parameters()]
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        assert logp.dtype == torch.float32
    flat = {k: torch.cat([g.flatten() for g in v]) for k, v in grads.items()}
    cosine = torch.nn.functional.cosine_similarity(flat["fp32"], flat["bf16"], dim=0)
    assert cosine > 0.99, f"bf16 gradient direction off: cosine {cosine:.4f}"


def test_generation_inside_a_bf16_step_samples_what_it_samples_outside():
    from reasoner.generation.base import SamplingParams
    from reasoner.generation.hf import HFGenerator

    model, tok = tiny_model()
    Precision("bf16", [model])
    gen = HFGenerator(model, tok, batch_size=8)
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=12, seed=3)
    outside = [[c.token_ids for c in group] for group in gen.generate(["1+2=", "3*4="], params)]
    with Precision("bf16").region():
        inside = [[c.token_ids for c in group] for group in gen.generate(["1+2=", "3*4="], params)]
    assert inside == outside


@pytest.mark.parametrize("command", ["train-sft", "train-prm", "train-rl grpo", "train-rl oreo"])
def test_every_trainer_runs_under_bf16_close_to_fp32(tmp_path, command):
    """Two short runs from the same start, fp32 and bf16: both finite, the same step count, and
    bf16's first-step loss within 2% of fp32's (same batch, same weights)."""
    curves = {p: _train(tmp_path / p, command, p) for p in ("fp32", "bf16")}
    assert len(curves["fp32"]) == len(curves["bf16"]) > 1
    first = {p: c[0]["loss"] for p, c in curves.items()}
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in curves["bf16"])
    assert abs(first["bf16"] - first["fp32"]) <= 0.02 * abs(first["fp32"]) + 1e-3, first
    assert (tmp_path / "bf16" / "final").is_dir()


def _prm_file(root):
    from tests.prm.gym_data import gym_trajectories, write_jsonl

    path = root / "prm.jsonl"
    return path if path.exists() else write_jsonl(path, gym_trajectories(12, max_ops=3, max_operand=9))


def _offline_file(root):
    from tests.offline.helpers import gym_trajectories, write_trajectories

    path = root / "traj.jsonl"
    return path if path.exists() else write_trajectories(path, gym_trajectories(4))


def _train(run_dir, command, precision):
    common = TINY + [f"run_dir={run_dir}", f"optim.precision={precision}", "save_every=0", "log_every=1"]
    if command == "train-sft":
        from reasoner.stages import sft

        sft.run(config.load("train_sft", common + ["data.num_problems=32", "batch_size=8", "max_steps=4"]))
    elif command == "train-prm":
        from reasoner.stages import train_prm

        train_prm.run(config.load("train_prm", common + [f"train_file={_prm_file(run_dir.parent)}", "batch_size=4",
                                                          "max_steps=3"]))
    else:
        from reasoner.stages.train_rl import run

        algo = command.split()[1]
        extra = (["data.num_problems=16", "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=10",
                  "generation.batch_size=8", "batch_size=8", "steps=3", "eval_every=0"] if algo == "grpo"
                 else [f"algo={algo}", f"train_file={_offline_file(run_dir.parent)}", "batch_size=4", "steps=3",
                       "eval_every=0"])
        run(config.load("train_rl", common + extra))
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
