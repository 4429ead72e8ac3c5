"""The page's "why" measurements on hand-written run files."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from reasoner.recipes.gym_diagnosis import (diagnosis_section, mc_label_placement, prime_training_signal,
                                            rlep_replay_share, search_exploitation)
from reasoner.recipes.gym_report import Runs


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _config(path, cfg):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))


def test_prime_kept_groups_and_a_prm_stuck_at_log_two(tmp_path):
    _config(tmp_path / "rl-prime-s0" / "config.yaml", {"prompts_per_step": 16, "generation": {"n": 8},
                                                       "algo": {"accuracy_filter": [0.2, 0.8], "prm_lr": 1e-6}})
    _write(tmp_path / "rl-prime-s0" / "metrics.jsonl",
           [{"step": 1, "loss": 0.1, "kept_groups": 2, "prm_loss": 0.70},
            {"step": 2, "skipped": 1, "kept_groups": 0},
            {"step": 3, "loss": 0.1, "kept_groups": 4, "prm_loss": math.log(2)},
            {"step": 3, "eval_accuracy": 0.5}])  # an eval row is not a step
    p = prime_training_signal(Runs(tmp_path, (0,)))
    assert p["kept"] == pytest.approx(2.0) and p["prompts"] == 16
    assert p["prm_loss_late"] == pytest.approx(math.log(2))
    text = "\n".join(diagnosis_section(Runs(tmp_path, (0,))))
    assert "kept 2.0 of 16 groups" in text and "never learned" in text and "drops the groups with 1 or 7" in text


def test_rlep_counts_the_problems_its_pool_covers(tmp_path):
    pool = tmp_path / "pool.jsonl"
    _write(pool, [{"problem_id": "a", "reward": 1.0}, {"problem_id": "a", "reward": 1.0},
                  {"problem_id": "b", "reward": 0.0}, {"problem_id": "c", "reward": 1.0}])
    _config(tmp_path / "rl-rlep-s0" / "config.yaml",
            {"prompts_per_step": 4, "algo": {"replay": 2, "pool_file": str(pool)}, "data": {"num_problems": 100},
             "generation": {"n": 8}})
    _write(tmp_path / "rl-rlep-s0" / "metrics.jsonl", [{"replayed": 1, "pool_size": 3}, {"replayed": 3, "pool_size": 3}])
    r = rlep_replay_share(Runs(tmp_path, (0,)))
    assert r == {"replayed": 2.0, "pool_answers": 3.0, "pool_problems": 2, "prompts": 4, "fresh": 32, "replay": 2,
                 "train_problems": 100}
    assert "cover 2 of the 100 problems" in "\n".join(diagnosis_section(Runs(tmp_path, (0,))))


def test_mc_labels_placed_against_the_true_first_error(tmp_path):
    def rec(mc, true):
        return {"step_labels": mc, "meta": {"true_step_labels": true}}

    _write(tmp_path / "collect-shepherd" / "trajectories.jsonl", [
        rec([0.0, 0.0, 0.0], [True, False, False]),     # early
        rec([1.0, 0.0, 0.0], [True, False, False]),     # exact
        rec([1.0, 1.0, 0.0], [True, False, False]),     # late
        rec([None, None, 0.0], [True, False, False]),   # outcome only
        rec([1.0, 1.0, 1.0], [True, True, True]),       # a right sample: counted for right steps only
    ])
    m = mc_label_placement(Runs(tmp_path, (0,)), "shepherd")
    assert m["wrong_samples"] == 4
    assert (m["early"], m["exact"], m["late"], m["outcome only"]) == (0.25, 0.25, 0.25, 0.25)
    assert m["right_called_wrong"] == pytest.approx(1 / 6)  # 6 labelled right steps (None is no label); one called wrong
    assert mc_label_placement(Runs(tmp_path, (0,)), "omegaprm") is None


def test_search_exploitation_between_the_two_largest_budgets(tmp_path):
    rows = []
    for n, correct in ((4, [True, True, False]), (16, [True, True, False]), (64, [False, True, True])):
        rows += [{"method": "best_of_n", "n": n, "id": f"p{i}", "correct": c} for i, c in enumerate(correct)]
    _write(tmp_path / "search-sweep" / "sweep_results.jsonl", rows)
    e = search_exploitation(Runs(tmp_path, (0,)))
    assert e == {"best_of_n": {"lo": 16, "hi": 64, "lost": 1, "gained": 1, "problems": 3}}
    assert search_exploitation(Runs(tmp_path / "none", (0,))) is None
    assert diagnosis_section(Runs(tmp_path / "none", (0,))) == []
