"""Adding an algorithm is one module + one yaml: toy online and offline algorithms written to a
temp dir (module registering itself, conf/algo/NAME.yaml beside a copy of the shipped configs)
train 2 steps through `reasoner.run`, with strict config for their own keys, touching nothing
else in the package."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import pytest

import reasoner
from reasoner import config
from reasoner.algos import registry
from reasoner.errors import UserError
from tests.conftest import TINY
from tests.offline.helpers import gym_trajectories, write_trajectories

pytestmark = pytest.mark.usefixtures("one_thread")

TOY_MODULE = '''
"""REINFORCE with a batch-mean baseline (online) and SFT on every sample (offline): toys."""
from dataclasses import dataclass

from reasoner.algos.offline.base import OfflineAlgorithm, on_device, policy_step
from reasoner.algos.online.base import Advantages, ClippedConfig, OnlineAlgorithm
from reasoner.algos.registry import register
from reasoner.config import AlgoConfig


@dataclass
class ToyConfig(ClippedConfig):
    name: str = "toy"
    num_iterations: int = 1
    baseline: str = "mean"  # mean | none


@register
class Toy(OnlineAlgorithm):
    name = "toy"
    Config = ToyConfig

    def advantages(self, inputs):
        r = inputs.outcome
        adv = r - r.mean() if self.cfg.baseline == "mean" else r
        return Advantages(adv, inputs, {"baseline": float(r.mean())})


@dataclass
class ToySFTConfig(AlgoConfig):
    name: str = "toy_sft"


@register
class ToySFT(OfflineAlgorithm):
    name = "toy_sft"
    Config = ToySFTConfig

    def setup(self, policy, model_cfg, value_cfg, pad_id, total_steps):
        self.policy, self.pad_id = policy, pad_id
        self.models = {"policy": policy}
        self.opts = {"policy": self.policy_optim(policy, total_steps)}

    def update(self, items):
        from reasoner.offline import objectives as obj
        from reasoner.offline.data import collate

        batch = on_device(collate(items, self.pad_id), self.policy)
        return policy_step("toy loss", *obj.rft_loss(self.policy, batch), self.opts["policy"])
'''

RL = [*TINY, "data.num_problems=20", "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=8",
      "batch_size=8", "eval_every=0", "save_every=0", "steps=2",
      "reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum"]


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy module imported from tmp_path (it registers itself) and its yamls in a conf copy."""
    monkeypatch.setattr(registry, "ALGORITHMS", dict(registry.ALGORITHMS))  # undone after the test
    conf = tmp_path / "conf"
    shutil.copytree(config.conf_dir(), conf)
    (conf / "algo" / "toy.yaml").write_text("name: toy\neps_high: 0.3\nbaseline: mean\n")
    (conf / "algo" / "toy_sft.yaml").write_text("name: toy_sft\n")
    monkeypatch.setattr(config, "conf_dir", lambda: conf)
    path = tmp_path / "toy_algorithms.py"
    path.write_text(TOY_MODULE)
    spec = importlib.util.spec_from_file_location("toy_algorithms", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "toy_algorithms", module)
    spec.loader.exec_module(module)
    return module


def test_a_toy_online_algorithm_trains_two_steps(tmp_path, toy):
    summary = reasoner.run("train-rl", [*RL, "algo=toy", f"run_dir={tmp_path / 'run'}"])
    assert summary["algo"] == "toy" and summary["steps"] == 2 and summary["rollouts"] == 16
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2] and all("baseline" in r and "loss" in r for r in recs)
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    cfg = config.load("train_rl", ["algo=toy"])
    assert type(cfg.algo) is toy.ToyConfig and cfg.algo.eps_high == 0.3


def test_a_toy_offline_algorithm_trains_two_steps(tmp_path, toy):
    data = write_trajectories(tmp_path / "traj.jsonl", gym_trajectories(2))
    summary = reasoner.run("train-rl", [*TINY, "algo=toy_sft", f"train_file={data}", "batch_size=2", "eval_problems=0",
                                        "save_every=0", f"run_dir={tmp_path / 'off'}"])
    assert summary["algo"] == "toy_sft" and summary["steps"] == 2 and summary["items"] == 4
    assert "sft_loss" in json.loads((tmp_path / "off" / "metrics.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize("overrides,message", [
    (["algo=toy", "algo.baselin=none"], "config: unknown key 'algo.baselin' (did you mean 'algo.baseline'?)"),
    (["algo=grpo", "algo.baseline=none"], "config: unknown key 'algo.baseline' (algo=grpo does not take it; toy does)"),
    (["algo=toy", "algo.scale_rewards=none"], "config: unknown key 'algo.scale_rewards' (algo=toy does not take it; grpo, rlep do)"),
])
def test_the_toys_config_is_strict(toy, overrides, message):
    with pytest.raises(UserError) as err:
        config.load("train_rl", overrides)
    assert str(err.value) == message


def test_register_checks_what_it_is_given():
    class NoKind:
        name = "x"

    with pytest.raises(ValueError, match="kind"):
        registry.register(NoKind)
    with pytest.raises(UserError, match=r"unknown algo.name 'grpp' \(did you mean 'grpo'\?\)"):
        registry.get_algorithm("grpp")
