"""decode writes per-problem results and a summary, resumes by id, and grades correctly."""

from __future__ import annotations

import json

from reasoner import config
from reasoner.stages import decode, sft
from tests.conftest import TINY


def test_decode_runs_and_resumes(tmp_path):
    cfg = config.load("decode", TINY + [f"run_dir={tmp_path}", "data.num_problems=6", "generation.max_new_tokens=8",
                                        "generation.n=2", "generation.temperature=1.0", "k=[1,2]"])
    summary = decode.run(cfg)
    assert summary["problems"] == 6 and summary["samples"] == 12
    assert {"accuracy", "pass@2", "maj@2", "tokens_per_s"} <= set(summary)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    # drop the last two records as if the run had been killed, then resume
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:4]) + "\n")
    decode.run(cfg)
    ids = [json.loads(line)["id"] for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 6


def test_sft_then_decode_gets_gym_problems_right(tmp_path):
    """A short SFT on an easy gym must already solve some held-out problems greedily."""
    easy = ["data.min_ops=1", "data.max_ops=1", "data.max_operand=20", "data.ops=+"]
    sft.run(config.load("train_sft", [f"run_dir={tmp_path}/sft", "data.num_problems=400", "batch_size=16",
                                      "max_steps=150", "optim.lr=3e-3", *easy]))
    summary = decode.run(config.load("decode", [f"model.name_or_path={tmp_path}/sft/final", f"run_dir={tmp_path}/dec",
                                                "data.num_problems=30", "generation.max_new_tokens=24", *easy]))
    assert summary["accuracy"] > 0.2
