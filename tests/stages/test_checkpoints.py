"""Every trainer's checkpoint state comes back from the files exactly as it was handed over: the
policy optimiser, PPO's critic optimiser, PRIME's PRM optimiser, RLEP's pool, the offline
trainers' optimisers (OREO's policy + value), weights, RNG — tensors bit for bit, types kept."""

from __future__ import annotations

import copy
import json

import pytest

from reasoner import config
from reasoner.utils import checkpoint as ckpt
from tests.conftest import TINY
from tests.offline.helpers import gym_trajectories, write_trajectories
from tests.utils.test_checkpoint import assert_same

pytestmark = pytest.mark.usefixtures("one_thread")

RL = [*TINY, "data.num_problems=40", "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=10",
      "generation.batch_size=16", "batch_size=4", "eval_every=0", "steps=2", "save_every=1",
      "reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum"]


@pytest.fixture
def saved(monkeypatch):
    """What each save_checkpoint call was given (deep copies, taken before writing)."""
    calls = []
    real = ckpt.save_checkpoint

    def spy(root, step, models, state, keep=1, **kw):
        calls.append({"step": step, "state": copy.deepcopy(state), "rng": copy.deepcopy(ckpt.rng_state()),
                      "weights": {k: ckpt.trainable_state(m) for k, m in models.items()}})
        path = real(root, step, models, state, keep, **kw)
        calls[-1]["path"] = path
        return path

    monkeypatch.setattr(ckpt, "save_checkpoint", spy)
    return calls


def _check(calls, keys):
    assert calls, "no checkpoint was saved"
    last = calls[-1]
    payload = ckpt.read_checkpoint(last["path"])
    assert payload["step"] == last["step"]
    assert keys <= set(last["state"])
    assert_same(payload["state"], last["state"])
    assert_same(payload["weights"], last["weights"], "weights")
    assert_same(payload["rng"], last["rng"], "rng")


def _gold_pool(path):
    from reasoner.tasks import get_task

    task = get_task("arith")
    rows = [{"id": f"{p.id}/0", "problem_id": p.id, "prompt": p.prompt, "response": task.format_solution(p),
             "steps": p.solution_steps, "pred_answer": p.answer, "reward": 1.0}
            for p in task.load_problems(config.load("train_rl", RL).data)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("algo,extra,keys", [
    ("ppo", ["algo.minibatch_size=4"], {"optimizer", "scheduler", "critic_optimizer", "rollouts"}),
    ("prime", ["algo.accuracy_filter=[0.0,1.0]"], {"optimizer", "prm_optimizer"}),
    ("rlep", ["algo.replay=1", "algo.pool_grow=true"], {"optimizer", "pool"}),
])
def test_online_trainer_state_round_trips(tmp_path, saved, algo, extra, keys):
    from reasoner.stages.train_rl import run

    if algo == "rlep":
        extra = [*extra, f"algo.pool_file={_gold_pool(tmp_path / 'pool.jsonl')}"]
    run(config.load("train_rl", RL + [f"run_dir={tmp_path / 'run'}", f"algo={algo}", *extra]))
    _check(saved, keys)
    if algo == "rlep":
        assert saved[-1]["state"]["pool"]["entries"]


def test_offline_oreo_state_round_trips(tmp_path, saved):
    from reasoner.stages.train_rl import run

    data = write_trajectories(tmp_path / "traj.jsonl", gym_trajectories(4))
    run(config.load("train_rl", [*TINY, "model.device=cpu", "algo=oreo", f"train_file={data}", f"run_dir={tmp_path / 'run'}",
                                 "batch_size=2", "steps=2", "eval_problems=0", "save_every=1"]))
    _check(saved, {"optim"})
    assert set(saved[-1]["state"]["optim"]) == {"policy", "value"}
    assert set(saved[-1]["weights"]) == {"policy", "value"}


def test_sft_state_round_trips(tmp_path, saved):
    from reasoner.stages import sft

    sft.run(config.load("train_sft", [*TINY, f"run_dir={tmp_path}", "data.num_problems=32", "batch_size=8",
                                      "max_steps=2", "save_every=1", "model.lora.enabled=true", "model.lora.r=4"]))
    _check(saved, {"optimizer", "scheduler"})
    assert all("lora" in name for name in saved[-1]["weights"]["policy"])  # only the adapter is stored
