"""reasoner.run(command, overrides): the CLI's commands from Python, same config, errors raised."""

from __future__ import annotations

import json

import pytest

import reasoner
from reasoner import api
from reasoner.errors import UserError
from tests.conftest import TINY


def test_run_returns_the_summary_the_run_wrote(tmp_path):
    summary = reasoner.run("train-sft", [*TINY, f"run_dir={tmp_path}", "data.num_problems=16", "batch_size=8",
                                         "max_steps=2", "log_every=1", "save_every=0"])
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["model_dir"] == str(tmp_path / "final")


@pytest.mark.parametrize("command,overrides,message", [
    ("train-rl", ["stepz=3"], "config: unknown key 'stepz' (did you mean 'steps'?)"),
    ("train-rl", ["algo=grpoo"], "config: unknown algo 'grpoo' (did you mean 'grpo'?)"),
    ("train-rl", ["algo=ppo", "algo.scale_rewards=batch"],
     "config: unknown key 'algo.scale_rewards' (algo=ppo does not take it; grpo, rlep do)"),
    ("train-sfft", [], "unknown command 'train-sfft' (did you mean 'train-sft'?)"),
])
def test_bad_input_raises_the_clis_one_line_error(command, overrides, message, cli):
    with pytest.raises(UserError) as err:
        reasoner.run(command, overrides)
    assert str(err.value) == message
    if command in api.COMMANDS:
        code, _, cli_err = cli(command, *overrides, "--dry-run")
        assert code == 2 and cli_err.strip() == f"error: {message}"


def test_a_bad_run_dir_stops_before_the_stage(tmp_path, monkeypatch):
    import reasoner.stages.train_rl as stage

    ran = []
    monkeypatch.setattr(stage, "run", lambda cfg: ran.append(cfg))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        reasoner.run("train_rl", [f"run_dir={tmp_path / 'file'}"])
    assert ran == []


def test_the_clis_short_names_and_the_loop_are_importable():
    cfg = api.load_config("train-rl", ["n=4", "temperature=0.7", "task=gsm8k"])
    assert (cfg.generation.n, cfg.generation.temperature, cfg.data.name) == (4, 0.7, "gsm8k")
    from reasoner.train import Recipe, train  # noqa: F401

    assert reasoner.Recipe is Recipe and reasoner.RecipeBase is not None and reasoner.train.train is train
