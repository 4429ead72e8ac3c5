"""The one scoring API: loading every scorer kind from disk, batching that changes nothing,
aggregations, ORM mode, and the implicit PRM's sums checked against a plain forward pass."""

from __future__ import annotations

import math

import pytest
import torch

from reasoner.config import ModelConfig, PRMConfig, ScorerConfig, TinyConfig
from reasoner.errors import UserError
from reasoner.scoring import aggregate, load_scorer

SMALL = TinyConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64,
                   max_position_embeddings=96)
PROMPTS = ["Compute: (2 + 3) * 4\n", "Compute: 7 - 1\n", "Compute: ((1 + 1) + 1) + 1\n"]
STEPS = [["2 + 3 = 5", "5 * 4 = 20", "Answer: 20"], ["7 - 1 = 6", "Answer: 6"],
         ["1 + 1 = 2", "2 + 1 = 3", "3 + 1 = 4", "Answer: 4"]]


def tiny(seed: int = 0):
    from reasoner.models import load_policy

    return load_policy(ModelConfig(device="cpu", seed=seed, tiny=SMALL))


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    from reasoner.models import ValueModel
    from reasoner.prm.model import PRMSpec, save_prm

    root = tmp_path_factory.mktemp("scorers")
    model, tok = tiny(1)
    save_prm(model, tok, PRMSpec(step_separator="\n"), root / "prm")
    ref, _ = tiny(1)
    policy, _ = tiny(2)  # differs from its reference, so log-ratios are not zero
    save_prm(policy, tok, PRMSpec(kind="implicit", beta=0.5, step_separator="\n"), root / "implicit", reference_model=ref)
    value = ValueModel(tiny(3)[0].model)
    torch.nn.init.constant_(value.head.bias, 0.25)
    torch.nn.init.normal_(value.head.weight, std=0.05)
    value.save(root / "value", tok)
    save_prm(value, tok, PRMSpec(head="scalar", step_separator="\n"), root / "scalar")
    return root


def cfg(kind, path, **kw):
    return ScorerConfig(kind=kind, path=str(path), **kw)


def test_aggregate_by_hand():
    s = [0.9, 0.5, 0.8]
    assert aggregate(s, "min") == 0.5
    assert aggregate(s, "last") == 0.8
    assert aggregate(s, "prod") == pytest.approx(0.36)
    assert aggregate(s, "mean") == pytest.approx(2.2 / 3)
    assert aggregate([], "min") == 0.0
    with pytest.raises(UserError):
        aggregate(s, "max")


@pytest.mark.parametrize("kind,sub", [("prm", "prm"), ("prm", "scalar"), ("implicit", "implicit"), ("value", "value")])
def test_scores_shape_range_and_batching_invariance(dirs, kind, sub):
    one = load_scorer(cfg(kind, dirs / sub, batch_size=1), device="cpu")
    many = load_scorer(cfg(kind, dirs / sub, batch_size=8), device="cpu")
    a = one.score(PROMPTS, STEPS)
    b = many.score(PROMPTS, STEPS)
    assert [len(x) for x in a] == [len(s) for s in STEPS]
    assert all(0.0 <= v <= 1.0 for row in a for v in row)
    for ra, rb in zip(a, b):
        assert ra == pytest.approx(rb, abs=1e-5)
    assert many.score([], []) == []
    assert many.score(["Compute: 1 + 1\n"], [[]]) == [[]]


def test_prefix_scores_equal_full_scores(dirs):
    """Causal: step i's score depends on steps 1..i only, so search can score prefixes."""
    scorer = load_scorer(cfg("prm", dirs / "prm"), device="cpu")
    full = scorer.score(PROMPTS[:1], STEPS[:1])[0]
    for i in range(1, len(STEPS[0]) + 1):
        assert scorer.score(PROMPTS[:1], [STEPS[0][:i]])[0] == pytest.approx(full[:i], abs=1e-5)


def test_implicit_step_sums_match_a_plain_forward(dirs):
    from reasoner.prm.model import load_prm
    from reasoner.prm.tokenization import encode_spans
    from reasoner.scoring import ImplicitScorer

    loaded = load_prm(dirs / "implicit", "cpu")
    scorer = ImplicitScorer(loaded.model, loaded.reference, loaded.tokenizer, loaded.spec)
    enc = encode_spans(loaded.tokenizer, PROMPTS[0], STEPS[0], "\n")
    ids = torch.tensor([enc.input_ids])
    with torch.no_grad():
        lp = torch.log_softmax(loaded.model(ids).logits[0], -1)
        lr = torch.log_softmax(loaded.reference.model(ids).logits[0], -1)
    ratio = [float(lp[j - 1, ids[0, j]] - lr[j - 1, ids[0, j]]) for j in range(ids.shape[1])]
    expected = [0.5 * sum(ratio[a:b]) for a, b in enc.spans]  # beta = 0.5
    assert scorer.step_rewards(PROMPTS[:1], STEPS[:1])[0] == pytest.approx(expected, abs=1e-4)
    assert scorer.score(PROMPTS[:1], STEPS[:1])[0] == pytest.approx([1 / (1 + math.exp(-r)) for r in expected], abs=1e-5)
    loaded.spec.implicit_score = "cumulative"
    cum = [sum(expected[:i + 1]) for i in range(len(expected))]
    assert scorer.score(PROMPTS[:1], STEPS[:1])[0] == pytest.approx([1 / (1 + math.exp(-r)) for r in cum], abs=1e-5)
    assert scorer.score_outcome(PROMPTS[:1], STEPS[:1])[0] == pytest.approx(1 / (1 + math.exp(-sum(expected))), abs=1e-5)
    # the reading can be chosen at scoring time (scorer.prm.implicit_score) without retraining
    via_cfg = load_scorer(cfg("implicit", dirs / "implicit", prm=PRMConfig(implicit_score="cumulative")), device="cpu")
    assert via_cfg.score(PROMPTS[:1], STEPS[:1])[0] == pytest.approx([1 / (1 + math.exp(-r)) for r in cum], abs=1e-5)


def test_orm_mode_scores_only_the_end(dirs):
    prm = load_scorer(cfg("prm", dirs / "prm"), device="cpu").score(PROMPTS, STEPS)
    orm = load_scorer(cfg("orm", dirs / "prm"), device="cpu").score(PROMPTS, STEPS)
    for p, o in zip(prm, orm):
        assert o == pytest.approx([p[-1]] * len(p), abs=1e-6)
    for sub in ("implicit", "value"):
        rows = load_scorer(cfg("orm", dirs / sub), device="cpu").score(PROMPTS, STEPS)
        assert all(len(set(r)) == 1 and 0.0 <= r[0] <= 1.0 for r in rows)


def test_long_inputs_are_cut_on_the_left(dirs):
    scorer = load_scorer(cfg("prm", dirs / "prm"), device="cpu")  # context 96 positions
    long_prompt = "Compute: " + " + ".join(["1"] * 60) + "\n"
    out = scorer.score([long_prompt], [STEPS[0]])[0]
    assert len(out) == 3 and all(0.0 <= v <= 1.0 for v in out)


def test_plain_hf_dir_uses_the_configured_tag(dirs, tmp_path):
    """A PRM directory without prm.json (e.g. an external Math-Shepherd-style model) is read
    with scorer.prm.* ; same model + same tag -> same scores."""
    from reasoner.models import save_model

    model, tok = tiny(1)
    save_model(model, tok, tmp_path / "plain")
    a = load_scorer(cfg("prm", tmp_path / "plain", prm=PRMConfig(step_separator="\n")), device="cpu").score(PROMPTS, STEPS)
    b = load_scorer(cfg("prm", dirs / "prm"), device="cpu").score(PROMPTS, STEPS)
    assert [v for r in a for v in r] == pytest.approx([v for r in b for v in r])


def test_load_errors(dirs, tmp_path):
    assert load_scorer(ScorerConfig(kind="none")) is None
    with pytest.raises(UserError, match="scorer.path is required"):
        load_scorer(ScorerConfig(kind="prm"))
    with pytest.raises(UserError, match="no such directory"):
        load_scorer(cfg("prm", tmp_path / "missing"))
    with pytest.raises(UserError, match="scorer.kind=implicit"):
        load_scorer(cfg("prm", dirs / "implicit"), device="cpu")
    with pytest.raises(UserError, match="not a value-model"):
        load_scorer(cfg("value", dirs / "prm"), device="cpu")
    with pytest.raises(UserError, match="scorer.kind 'reward'"):
        load_scorer(cfg("reward", dirs / "prm"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "prm.json").write_text('{"kind": "discriminative", "colour": 1}')
    with pytest.raises(UserError, match="field 'colour'"):
        load_scorer(cfg("prm", tmp_path / "broken"))


def _full_pass(scorer, prompts, steps):
    with torch.inference_mode():
        return scorer._score_full(prompts, steps)


def test_cached_paths_score_like_full_passes(dirs):
    """Search scores each child as its parent + one step: the path cache runs only the new
    step on the parent's K/V, and must give the full pass's scores (also for batches that mix
    hits, misses, duplicates and a solution too long for the context)."""
    scorer = load_scorer(cfg("prm", dirs / "prm", batch_size=2), device="cpu")
    for k in range(1, 5):
        rows = [s[:k] for s in STEPS]
        got = scorer.score(PROMPTS, rows)
        for a, b in zip(got, _full_pass(scorer, PROMPTS, rows)):
            assert a == pytest.approx(b, abs=1e-5)
    long_prompt = "Compute: " + " + ".join(["1"] * 60) + "\n"
    prompts = PROMPTS + PROMPTS[:1] + [long_prompt, PROMPTS[1]]
    steps = STEPS + [STEPS[0][:1] + ["5 * 4 = 21"], STEPS[0], ["7 - 1 = 5", "Answer: 5"]]
    got = scorer.score(prompts, steps)
    for a, b in zip(got, _full_pass(scorer, prompts, steps)):
        assert a == pytest.approx(b, abs=1e-5)
    assert scorer.score(["Compute: 1 + 1\n"], [[]]) == [[]]


def test_path_cache_forgets_when_the_weights_change(dirs):
    scorer = load_scorer(cfg("prm", dirs / "prm"), device="cpu")
    before = scorer.score(PROMPTS, STEPS)
    with torch.no_grad():
        scorer.model.model.norm.weight.mul_(3.0)  # in place, like an optimizer step
    after = scorer.score(PROMPTS, [s[:2] for s in STEPS])
    for a, b in zip(after, _full_pass(scorer, PROMPTS, [s[:2] for s in STEPS])):
        assert a == pytest.approx(b, abs=1e-5)
    assert any(abs(a[0] - b[0]) > 1e-4 for a, b in zip(before, after))


def test_path_cache_off_and_bounded(dirs):
    from reasoner.prm.model import load_prm
    from reasoner.scoring import DiscriminativeScorer

    loaded = load_prm(dirs / "prm", "cpu")
    off = DiscriminativeScorer(loaded.model, loaded.tokenizer, loaded.spec, kv_cache_bytes=0)
    small = DiscriminativeScorer(loaded.model, loaded.tokenizer, loaded.spec, kv_cache_bytes=4096)
    a, b = off.score(PROMPTS, STEPS), small.score(PROMPTS, STEPS)
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=1e-5)
    assert off._paths is None and small._paths.bytes <= 4096
