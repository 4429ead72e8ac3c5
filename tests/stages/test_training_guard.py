"""Every trainer stops through the one guard: at lr 1e30, or on a NaN gradient behind a finite
loss, train-sft / train-prm / train-rl (online: policy, PPO critic, PRIME's PRM; offline: OREO
policy + value, RFT, DPO) exit 2 with one line naming the step, write no final model, and keep
only finite checkpoints; a planted pickle in a run dir is never unpickled on resume."""

from __future__ import annotations

import pickle

import pytest
import torch

from reasoner import config
from reasoner.errors import UserError
from reasoner.utils.checkpoint import list_checkpoints, read_checkpoint
from tests.conftest import TINY
from tests.offline.helpers import gym_trajectories as offline_trajectories
from tests.offline.helpers import write_trajectories
from tests.prm.gym_data import gym_trajectories, write_jsonl
from tests.stages import guard_rewards

pytestmark = pytest.mark.usefixtures("one_thread")

SFT = [*TINY, "data.num_problems=32", "batch_size=8", "optim.warmup_steps=0", "log_every=1", "save_every=1"]
PRM = [*TINY, "batch_size=4", "optim.warmup_steps=0", "log_every=1", "save_every=1"]
RL = [*TINY, "data.num_problems=40", "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=10",
      "generation.batch_size=16", "batch_size=4", "eval_every=0", "reward.kind=custom"]
OFFLINE = [*TINY, "model.device=cpu", "batch_size=4", "eval_problems=0", "save_every=0"]


@pytest.fixture(scope="module")
def prm_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("prm") / "gym.jsonl", gym_trajectories(16, max_ops=3, max_operand=9))


@pytest.fixture(scope="module")
def offline_file(tmp_path_factory):
    return write_trajectories(tmp_path_factory.mktemp("offline") / "traj.jsonl", offline_trajectories(4))


def error_line(code, err) -> str:
    """The CLI's one error line (stderr also carries the progress log)."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def assert_finite_checkpoints(run_dir):
    """Every checkpoint left in the run dir holds finite, unexploded weights and optimiser state."""
    for path in list_checkpoints(run_dir / "checkpoints"):
        payload = read_checkpoint(path)
        for model, weights in payload["weights"].items():
            for name, w in weights.items():
                assert torch.isfinite(w).all() and w.abs().max() < 1e3, (path, model, name)
        for t in _tensors(payload["state"]):
            assert not t.is_floating_point() or torch.isfinite(t).all(), path


def _tensors(tree):
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _tensors(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from _tensors(v)


def nan_grad_term(model) -> torch.Tensor:
    """0 in value, NaN in gradient: the finite-loss / NaN-gradient case the loss check misses
    (sqrt's backward at a negative input is 0 * nan even where `where` discards it)."""
    w = next(p for p in model.parameters() if p.requires_grad)
    return torch.where(w > 1e9, torch.sqrt(-w.abs() - 1.0), torch.zeros_like(w)).sum()


# --------------------------------------------------------------------------- train-sft / train-prm


def test_sft_at_lr_1e30_exits_2_at_step_1_and_saves_nothing(cli, tmp_path):
    code, _, err = cli("train-sft", *SFT, f"run_dir={tmp_path}", "max_steps=4", "optim.lr=1e30")
    line = error_line(code, err)
    assert "train-sft: policy update exploded" in line and "at step 1;" in line
    assert "no checkpoint had been saved yet" in line
    assert not (tmp_path / "final").exists() and not list_checkpoints(tmp_path / "checkpoints")


def test_sft_nan_gradient_behind_a_finite_loss_stops_before_the_step(tmp_path, monkeypatch):
    from reasoner.stages import sft
    from reasoner.train import sft as sft_recipe

    real, calls = sft_recipe.response_loss, {"n": 0}

    def nan_grads_on_third_step(model, *args):
        calls["n"] += 1
        loss, n = real(model, *args)
        return (loss + nan_grad_term(model) if calls["n"] == 3 else loss), n

    monkeypatch.setattr(sft_recipe, "response_loss", nan_grads_on_third_step)
    with pytest.raises(UserError, match=r"^train-sft: policy gradient norm is nan at step 3; step refused, "
                                        r"stopped without saving \(last good checkpoint kept: .*step-2\)$"):
        sft.run(config.load("train_sft", SFT + [f"run_dir={tmp_path}", "max_steps=5", "optim.lr=3e-3"]))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-2"]
    assert_finite_checkpoints(tmp_path)
    assert not (tmp_path / "final").exists()


def test_prm_at_lr_1e30_exits_2_at_step_1_and_saves_nothing(cli, tmp_path, prm_file):
    code, _, err = cli("train-prm", *PRM, f"train_file={prm_file}", f"run_dir={tmp_path}", "max_steps=4", "optim.lr=1e30")
    line = error_line(code, err)
    assert "train-prm: prm update exploded" in line and "at step 1;" in line
    assert not (tmp_path / "final").exists() and not list_checkpoints(tmp_path / "checkpoints")


def test_prm_nan_gradient_behind_a_finite_loss_stops_before_the_step(tmp_path, prm_file, monkeypatch):
    from reasoner.prm import train as prm_recipe
    from reasoner.stages import train_prm

    real, calls = prm_recipe.batch_loss, {"n": 0}

    def nan_grads_on_third_step(model, *args):
        calls["n"] += 1
        loss, mets = real(model, *args)
        return (loss + nan_grad_term(model) if calls["n"] == 3 else loss), mets

    monkeypatch.setattr(prm_recipe, "batch_loss", nan_grads_on_third_step)
    with pytest.raises(UserError, match=r"^train-prm: prm gradient norm is nan at step 3; .*last good checkpoint kept: .*step-2\)$"):
        train_prm.run(config.load("train_prm", PRM + [f"train_file={prm_file}", f"run_dir={tmp_path}", "max_steps=5"]))
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-2"]
    assert_finite_checkpoints(tmp_path)
    assert not (tmp_path / "final").exists()


# --------------------------------------------------------------------------- train-rl online


@pytest.mark.parametrize("what,extra", [
    ("policy", ["reward.function=tests.rl.reward_fns:char_checksum"]),
    # all-zero rewards: zero advantages and gradients, yet the weights move by ~lr —
    ("policy", ["reward.function=tests.stages.guard_rewards:zero", "optim.weight_decay=0.01"]),  # (1 - lr*wd) = -1e28
    ("policy", ["reward.function=tests.stages.guard_rewards:zero", "algo.beta=0.05", "algo.kl_estimator=full",
                "batch_size=3"]),  # float noise of the full-vocab KL (~1e-11) is an ~lr step for Adam
    ("critic", ["algo=ppo", "algo.critic_lr=1e30", "reward.function=tests.rl.reward_fns:char_checksum"]),
    ("implicit PRM", ["algo=prime", "algo.prm_lr=1e30", "algo.accuracy_filter=[0.0,1.0]",
                      "reward.function=tests.rl.reward_fns:char_checksum"]),
])
def test_online_rl_at_lr_1e30_exits_2_and_writes_no_final(cli, tmp_path, what, extra):
    lr = [] if any(x.startswith(("algo.critic_lr", "algo.prm_lr")) for x in extra) else ["optim.lr=1e30"]
    code, _, err = cli("train-rl", *RL, f"run_dir={tmp_path}", "steps=1", *lr, *extra)
    line = error_line(code, err)
    assert f"train-rl: {what} update exploded" in line and "at step 1;" in line
    assert not (tmp_path / "final").exists() and not (tmp_path / "adapter").exists()


def test_grpo_all_zero_rewards_at_lr_1e30_is_an_exact_no_op(tmp_path):
    """Without weight decay or a KL term, zero advantages give exactly zero gradients and AdamW's
    step is 0 / (0 + eps) = 0: nothing explodes, the run ends with the initial weights."""
    from safetensors.torch import load_file

    from reasoner.models import load_policy
    from reasoner.stages.train_rl import run

    cfg = config.load("train_rl", RL + [f"run_dir={tmp_path}", "steps=2", "optim.lr=1e30",
                                        "reward.function=tests.stages.guard_rewards:zero"])
    start = {n: p.detach().clone() for n, p in load_policy(cfg.model)[0].named_parameters()}
    run(cfg)
    final = load_file(str(tmp_path / "final" / "model.safetensors"))
    assert all(torch.equal(final[n], w) for n, w in start.items() if n in final)


def test_online_explosion_after_a_checkpoint_keeps_that_finite_checkpoint(tmp_path):
    from reasoner.stages.train_rl import run

    guard_rewards.CALLS["n"] = 0
    cfg = config.load("train_rl", RL + [f"run_dir={tmp_path}", "steps=4", "save_every=1", "optim.lr=1e30",
                                        "reward.function=tests.stages.guard_rewards:zero_then_varied"])
    with pytest.raises(UserError, match=r"^train-rl: policy update exploded .* at step 2; step refused, "
                                        r"stopped without saving \(last good checkpoint kept: .*step-1\)$"):
        run(cfg)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step-1"]
    assert_finite_checkpoints(tmp_path)
    assert not (tmp_path / "final").exists()


# --------------------------------------------------------------------------- train-rl offline


@pytest.mark.parametrize("algo,what,lr", [
    ("oreo", "policy", "optim.lr=1e30"),
    ("oreo", "value", "algo.value_lr=1e30"),
    ("rft", "policy", "optim.lr=1e30"),
    ("dpo", "policy", "optim.lr=1e30"),
])
def test_offline_rl_at_lr_1e30_exits_2_and_writes_no_final(cli, tmp_path, offline_file, algo, what, lr):
    code, _, err = cli("train-rl", f"algo={algo}", f"train_file={offline_file}", f"run_dir={tmp_path}", *OFFLINE, lr)
    line = error_line(code, err)
    assert f"train-rl {algo}: {what} update exploded" in line and "at step 1;" in line
    assert not (tmp_path / "final").exists() and not (tmp_path / "value").exists()


# --------------------------------------------------------------------------- planted pickles


class _Planted:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling creates the marker file
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("stage", ["train-sft", "train-prm", "train-rl grpo", "train-rl rft"])
def test_resume_never_unpickles_a_planted_checkpoint(cli, tmp_path, stage, prm_file, offline_file):
    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    step_dir = run_dir / "checkpoints" / "step-1"
    step_dir.mkdir(parents=True)
    (step_dir / "trainer.pt").write_bytes(pickle.dumps({"weights": _Planted(marker)}))
    args = {"train-sft": ["train-sft", *SFT, "max_steps=3"],
            "train-prm": ["train-prm", *PRM, f"train_file={prm_file}", "max_steps=3"],
            "train-rl grpo": ["train-rl", *RL, "steps=3", "reward.function=tests.rl.reward_fns:char_checksum"],
            "train-rl rft": ["train-rl", "algo=rft", f"train_file={offline_file}", *OFFLINE, "steps=3"]}[stage]
    code, _, err = cli(*args, f"run_dir={run_dir}")
    line = error_line(code, err)
    assert line == f"error: checkpoint format from an older reasoner; delete {step_dir} or set resume=false"
    assert not marker.exists()
    # the same planted bytes under the new file names are unreadable data, not code
    for name in ("trainer.json", "tensors.safetensors"):
        (step_dir / name).write_bytes(pickle.dumps({"weights": _Planted(marker)}))
    code, _, err = cli(*args, f"run_dir={run_dir}")
    assert "unreadable" in error_line(code, err) and not marker.exists()
    # resume=false ignores the planted directory altogether and trains
    code, _, err = cli(*args, f"run_dir={run_dir}", "resume=false")
    assert code == 0, err
    assert not marker.exists()


def test_the_nan_gradient_term_is_zero_in_value_and_nan_in_gradient():
    model = torch.nn.Linear(2, 2)
    term = nan_grad_term(model)
    assert float(term.detach()) == 0.0
    term.backward()
    assert torch.isnan(model.weight.grad).all()
