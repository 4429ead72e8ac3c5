"""What PPO and PRIME train beside the policy is kept: run_dir/critic is a value-model directory
(`scorer.kind=value`) and run_dir/prm an implicit-PRM directory (`scorer.kind=implicit`), both
scoring steps in decode as OREO's value/ does."""

from __future__ import annotations

import json

import pytest

from reasoner import config
from tests.conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

RL = [*TINY, "data.num_problems=20", "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=10",
      "generation.batch_size=16", "batch_size=8", "eval_every=0", "save_every=0", "steps=1",
      "reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum"]


@pytest.mark.parametrize("algo,extra,kind,subdir", [
    ("ppo", [], "value", "critic"),
    ("prime", ["algo.accuracy_filter=[0.0,1.0]"], "implicit", "prm"),
    ("prime", ["algo.accuracy_filter=[0.0,1.0]", "model.lora.enabled=true", "model.lora.r=4"], "implicit", "prm"),
])
def test_the_critic_and_the_implicit_prm_are_saved_as_scorers(tmp_path, algo, extra, kind, subdir):
    from reasoner.config import ScorerConfig
    from reasoner.scoring import load_scorer
    from reasoner.stages.train_rl import run

    summary = run(config.load("train_rl", RL + [f"run_dir={tmp_path}", f"algo={algo}", *extra]))
    assert summary[f"{subdir}_dir"] == str(tmp_path / subdir)
    assert json.loads((tmp_path / "summary.json").read_text())[f"{subdir}_dir"] == str(tmp_path / subdir)
    scorer = load_scorer(ScorerConfig(kind=kind, path=str(tmp_path / subdir)), "cpu")
    scores = scorer.score(["Compute: 1 + 2\n"], [["1 + 2 = 3", "Answer: 3"]])
    assert len(scores[0]) == 2 and all(0.0 <= s <= 1.0 for s in scores[0])
    if kind == "implicit":
        spec = json.loads((tmp_path / "prm" / "prm.json").read_text())
        assert spec["kind"] == "implicit" and spec["beta"] == 0.05 and (tmp_path / "prm" / "reference").is_dir()
