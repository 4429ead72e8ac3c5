"""Checkpoint files: safetensors + JSON only, exact round trips (fused AdamW state, scheduler,
every RNG), nothing non-finite written, and no file in a run dir is ever unpickled."""

from __future__ import annotations

import copy
import json
import math
import pickle
import random

import numpy as np
import pytest
import torch

from reasoner.errors import UserError
from reasoner.utils import checkpoint as ckpt
from reasoner.utils.train import build_optimizer, build_scheduler


class _Planted:
    """Unpickling this creates `marker` (what a crafted checkpoint would do instead)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"weights": _Planted(marker)}))


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def _train(model, opt, sched, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        model(torch.randn(5, 4, generator=g)).pow(2).mean().backward()
        opt.step()
        sched.step()


def _setup(model):
    opt = build_optimizer(model.parameters(), 1e-2, 0.01, [0.9, 0.95])
    return opt, build_scheduler(opt, "cosine", 2, 10)


def assert_same(a, b, where="state"):
    """Equal and of the same types all the way down (tuples stay tuples, tensors bit-identical)."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def test_encode_decode_keeps_every_type_exactly():
    tree = {"ints": {0: {"step": torch.tensor(3.0)}, 7: [1, 2]}, "betas": (0.9, 0.95), "lr": 1e-08,
            "odd": [float("inf"), float("nan"), None, True, "x"], "$looks_tagged": 1,
            "np": np.arange(5, dtype=np.uint32), "bf16": torch.randn(3, dtype=torch.bfloat16),
            "scalar": torch.tensor(7, dtype=torch.int64), "py_rng": random.getstate()}
    tensors: dict = {}
    data = json.loads(json.dumps(ckpt.encode(tree, tensors)))  # through text, as on disk
    assert_same(ckpt.decode(data, tensors), tree)
    with pytest.raises(TypeError, match="cannot store a object"):
        ckpt.encode({"x": object()}, {})


def test_fused_adamw_scheduler_and_rng_round_trip_and_training_continues_bit_identically(tmp_path):
    model = _model()
    opt, sched = _setup(model)
    assert opt.param_groups[0]["fused"]
    _train(model, opt, sched, 3, seed=1)
    state = copy.deepcopy({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rollouts": 12})
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    path = ckpt.save_checkpoint(tmp_path, 3, {"policy": model}, state)
    assert sorted(p.name for p in path.iterdir()) == ["tensors.safetensors", "trainer.json"]
    draws = (random.random(), np.random.rand(), torch.rand(1))
    _train(model, opt, sched, 2, seed=2)

    fresh = _model()
    opt2, sched2 = _setup(fresh)
    loaded = ckpt.load_checkpoint(path, {"policy": fresh})
    assert (random.random(), np.random.rand(), torch.rand(1)) == draws  # python, numpy, torch RNG restored
    assert loaded["step"] == 3 and loaded["rollouts"] == 12
    assert_same(loaded["optimizer"], state["optimizer"])  # exp_avg, exp_avg_sq, step tensors, param_groups
    assert_same(loaded["scheduler"], state["scheduler"])
    opt2.load_state_dict(loaded["optimizer"])
    sched2.load_state_dict(loaded["scheduler"])
    _train(fresh, opt2, sched2, 2, seed=2)
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    assert_same(opt2.state_dict(), opt.state_dict())


def test_only_trainable_weights_are_stored_and_a_different_model_is_refused(tmp_path):
    model = _model()
    model[0].requires_grad_(False)
    path = ckpt.save_checkpoint(tmp_path, 1, {"policy": model}, {})
    assert set(ckpt.read_checkpoint(path)["weights"]["policy"]) == {"1.weight", "1.bias", "2.weight", "2.bias"}
    with pytest.raises(UserError, match=r"policy weights do not match the model \(0.bias\); delete it or set resume=false"):
        ckpt.load_checkpoint(path, {"policy": _model()})
    with pytest.raises(UserError, match="not a checkpoint of this run"):
        ckpt.load_checkpoint(path, {"policy": model, "critic": _model()})


def test_a_non_finite_weight_or_moment_is_never_saved(tmp_path):
    model = _model()
    opt, sched = _setup(model)
    _train(model, opt, sched, 1, seed=0)
    ckpt.save_checkpoint(tmp_path, 1, {"policy": model}, {"optimizer": opt.state_dict()})
    opt.state[model[2].weight]["exp_avg"][0, 0] = float("nan")
    with pytest.raises(UserError, match=r"checkpoint step-2 not saved: .*exp_avg is not finite \(last good checkpoint kept: .*step-1\)"):
        ckpt.save_checkpoint(tmp_path, 2, {"policy": model}, {"optimizer": opt.state_dict()})
    with torch.no_grad():
        model[0].weight[0, 0] = float("inf")
    with pytest.raises(UserError, match=r"policy/0.weight is not finite"):
        ckpt.save_checkpoint(tmp_path, 2, {"policy": model}, {})
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-1"]
    assert [p.name for p in tmp_path.iterdir()] == ["step-1"]  # no temp dir left behind


def test_an_old_pickled_trainer_pt_is_refused_without_being_opened(tmp_path):
    marker = tmp_path / "pwned"
    plant(tmp_path / "ckpt" / "step-4" / "trainer.pt", marker)
    found = ckpt.list_checkpoints(tmp_path / "ckpt")
    assert [p.name for p in found] == ["step-4"]
    with pytest.raises(UserError, match=r"^checkpoint format from an older reasoner; delete .*step-4 or set resume=false$"):
        ckpt.load_checkpoint(found[-1], {"policy": _model()})
    assert not marker.exists()


@pytest.mark.parametrize("planted", ["trainer.json", "tensors.safetensors", "both"])
def test_a_pickle_planted_under_the_new_names_is_unreadable_not_run(tmp_path, planted, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise AssertionError("a checkpoint loader unpickled something")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    model = _model()
    path = ckpt.save_checkpoint(tmp_path, 2, {"policy": model}, {})
    marker = tmp_path / "pwned"
    for name in (["trainer.json", "tensors.safetensors"] if planted == "both" else [planted]):
        plant(path / name, marker)
    with pytest.raises(UserError, match=r"^checkpoint .*step-2: unreadable \(.*\); delete it or set resume=false$") as err:
        ckpt.load_checkpoint(path, {"policy": model})
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_a_tensor_reference_to_nowhere_is_a_clean_error(tmp_path):
    model = _model()
    path = ckpt.save_checkpoint(tmp_path, 1, {"policy": model}, {"optimizer": {"x": torch.ones(2)}})
    tree = json.loads((path / "trainer.json").read_text())
    tree["state"]["optimizer"]["x"] = {"$tensor": "/nope"}
    (path / "trainer.json").write_text(json.dumps(tree))
    with pytest.raises(UserError, match="unreadable"):
        ckpt.load_checkpoint(path, {"policy": model})
