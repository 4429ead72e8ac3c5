"""`reasoner train-rl` online: every algorithm end to end on a tiny model, config errors, exact
resume after SIGKILL, NaN stop keeping the last good checkpoint, LoRA with a disabled-adapter reference."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasoner import config
from reasoner.errors import UserError
from tests.conftest import REPO, TINY

SMALL = TINY + ["data.num_problems=40", "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=10",
                "generation.batch_size=16", "batch_size=4", "eval_problems=4", "eval_every=2", "save_every=0"]
TIMING = {"gen_s", "step_s", "tokens_per_s"}


def _run(tmp_path: Path, name: str, *extra: str):
    from reasoner.stages.train_rl import run

    cfg = config.load("train_rl", SMALL + [f"run_dir={tmp_path / name}", *extra])
    run(cfg)
    return [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]


def _gold_pool(path: Path) -> str:
    """Verified-correct trajectories for the first training problems (gold solutions)."""
    from reasoner.tasks import get_task

    cfg = config.load("train_rl", SMALL)
    task = get_task("arith")
    rows = [{"id": f"{p.id}/0", "problem_id": p.id, "prompt": p.prompt, "response": task.format_solution(p),
             "steps": p.solution_steps, "pred_answer": p.answer, "reward": 1.0} for p in task.load_problems(cfg.data)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("algo,extra", [
    ("grpo", ["algo.beta=0.05", "algo.num_iterations=2", "algo.minibatch_size=4"]),
    ("dapo", ["reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum"]),
    ("rloo", ["algo.beta=0.05"]),
    ("ppo", ["algo.minibatch_size=4"]),
    ("prime", ["algo.accuracy_filter=[0.0,1.0]"]),
])
def test_each_algorithm_trains_logs_and_saves(tmp_path, algo, extra):
    recs = _run(tmp_path, algo, f"algo={algo}", "steps=2", *extra)
    assert [r["step"] for r in recs] == [1, 2] and recs[-1]["rollouts"] == 16
    for key in ("reward", "accuracy", "loss", "entropy", "clip_fraction", "response_len", "tokens_per_s"):
        assert key in recs[0], key
    assert "eval_accuracy" in recs[1]
    if "beta=0.05" in " ".join(extra):
        assert "kl" in recs[0]
    if algo == "ppo":
        assert "value_loss" in recs[0]
    if algo == "prime":
        assert recs[0]["kept_groups"] == 2 and "prm_loss" in recs[0]
    assert (tmp_path / algo / "final" / "config.json").is_file()
    assert json.loads((tmp_path / algo / "summary.json").read_text())["rollouts"] == 16


@pytest.mark.parametrize("algo", ["grpo", "rloo", "ppo", "prime", "rlep"])
def test_each_algorithm_raises_a_learnable_reward(tmp_path, algo):
    """From a random tiny model: a dense custom reward (share of '7's) must climb within 20 steps."""
    extra = {"prime": ["algo.accuracy_filter=[0.0,1.0]"],
             "rlep": [f"algo.pool_file={_gold_pool(tmp_path / 'pool.jsonl')}", "algo.replay=1"]}.get(algo, [])
    recs = _run(tmp_path, algo, f"algo={algo}", "steps=20", "prompts_per_step=4", "generation.n=8",
                "generation.max_new_tokens=12", "generation.batch_size=32", "batch_size=32", "eval_every=0",
                "optim.lr=1e-2", "reward.kind=custom", "reward.function=tests.rl.reward_fns:count_of_sevens", *extra)
    first, last = [r["reward"] for r in recs[:3]], [r["reward"] for r in recs[-3:]]
    assert sum(last) / 3 > sum(first) / 3 + 0.2, [round(r["reward"], 3) for r in recs]


def test_dynamic_sampling_trains_only_on_groups_with_differing_rewards(tmp_path, monkeypatch):
    """DAPO's dynamic sampling: groups of equal rewards are dropped and more prompts are drawn
    (up to max_sampling_rounds); every generated rollout is counted, only kept groups are trained."""
    from reasoner.rl.recipe import OnlineRecipe

    trained = []
    update = OnlineRecipe.update

    def spy(self, roll, rewards, rng):
        trained.append((list(roll.sizes), [s.problem.answer for s in roll.samples]))
        return update(self, roll, rewards, rng)

    monkeypatch.setattr(OnlineRecipe, "update", spy)
    recs = _run(tmp_path, "ds", "algo=dapo", "steps=3", "prompts_per_step=4", "algo.max_sampling_rounds=4",
                "reward.kind=custom", "reward.function=tests.rl.reward_fns:flat_on_even_answers", "eval_every=0")
    assert len(trained) == 3
    for (sizes, answers), rec in zip(trained, recs):
        assert sizes == [4] * rec["kept_groups"] and rec["kept_groups"] <= 4
        assert all(int(a) % 2 == 1 for a in answers)  # even-answer groups (all rewards 0.5) never trained on
        assert rec["rollouts"] == 16 * sum(r["sampling_rounds"] for r in recs[: recs.index(rec) + 1])
    assert any(r["sampling_rounds"] > 1 for r in recs) and all(r["kept_groups"] == 4 for r in recs)


def test_dynamic_sampling_round_zero_is_the_plain_step():
    from reasoner.rl.rollouts import informative_groups, step_problem_indices, step_seed

    assert step_problem_indices(50, 4, 1, 3, 0) == step_problem_indices(50, 4, 1, 3)
    assert step_seed(1, 2, 3, 0) == step_seed(1, 2, 3)
    assert step_problem_indices(50, 4, 1, 3, 1) == step_problem_indices(50, 4, 1, 3, 1)  # pure: resumable
    assert len({step_seed(1, 2, 3, r) for r in range(4)}) == 4
    assert informative_groups([1, 1, 0, 1, 0.5, 0.5], [2, 2, 2]) == [1]


def test_pool_records_keep_the_answer_the_reward_pass_graded():
    """pool.jsonl holds the verifier's own pred_answer (GSM8K's last-number fallback included),
    never null beside reward 1."""
    from reasoner.config import RewardConfig
    from reasoner.data import Problem
    from reasoner.rl.rewards import RewardModel
    from reasoner.rl.recipe import correct_records
    from reasoner.rl.rollouts import Sample, concat_rewards
    from reasoner.tasks import get_task

    task = get_task("gsm8k")
    problem = Problem(id="g1", prompt="Q", answer="7", source="gsm8k")
    texts = ["She has 3 + 4 = 7 apples.", "3 + 4 = 7\n#### 7", "She has 8."]
    samples = [Sample(problem, "Q", [1], [2, 3], t, False) for t in texts]
    graded = RewardModel(RewardConfig(), task)([problem] * 3, ["Q"] * 3, texts, [[2, 3]] * 3)
    rewards = concat_rewards([graded])  # as OnlineRecipe.train_step joins its sampling rounds
    rows = correct_records(samples, rewards, [0, 1, 2], 0, "grpo")
    assert [(r["response"], r["pred_answer"], r["reward"]) for r in rows] == [(texts[0], "7", 1.0), (texts[1], "7", 1.0)]


@pytest.mark.parametrize("kl", ["k3", "full"])
def test_online_update_takes_every_logprob_at_the_sampling_temperature(tmp_path, monkeypatch, kl):
    """Policy, old and reference log-probs (and so ratios and KL) all at generation.temperature, as TRL."""
    from reasoner.rl import batch, update

    seen = []
    real = batch.response_logprobs

    def spy(*args, temperature=1.0, **kwargs):
        seen.append(temperature)
        return real(*args, temperature=temperature, **kwargs)

    monkeypatch.setattr(batch, "response_logprobs", spy)   # reference passes
    monkeypatch.setattr(update, "response_logprobs", spy)  # policy and old passes
    recs = _run(tmp_path, kl, "algo=grpo", "steps=1", "generation.temperature=0.7", "algo.beta=0.05",
                f"algo.kl_estimator={kl}", "algo.minibatch_size=4", "eval_every=0")
    assert "kl" in recs[0] and len(seen) >= 3 and set(seen) == {0.7}


def test_rlep_replays_pooled_answers_beside_fresh_ones(tmp_path):
    pool = _gold_pool(tmp_path / "pool.jsonl")
    recs = _run(tmp_path, "rlep", "algo=rlep", f"algo.pool_file={pool}", "steps=1")
    # one pooled answer per problem: groups of 4 fresh + 1 replayed, no placeholders for the missing M-1
    assert recs[0]["replayed"] == 2 and recs[0]["rollouts"] == 8


def test_lora_policy_with_kl_uses_the_base_as_reference(tmp_path):
    recs = _run(tmp_path, "lora", "model.lora.enabled=true", "model.lora.r=4", "algo.beta=0.1", "steps=1", "eval_every=0")
    assert recs[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the adapter starts as the identity
    assert (tmp_path / "lora" / "adapter").is_dir()


@pytest.mark.parametrize("bad,match", [
    (["algo=rlep"], "pool_file"),
    (["algo=oops"], "algo"),
    (["generation.temperature=0"], "temperature"),
    (["algo.loss_aggregation=sum"], "loss_aggregation"),
    (["reward.kind=custom", "reward.function=no.such.module:f"], "reward.function"),
    (["algo=rlep", "algo.pool_file=/nonexistent/pool.jsonl"], "pool_file"),
])
def test_bad_config_exits_2_before_writing(tmp_path, cli, bad, match):
    code, _, err = cli("train-rl", *SMALL, f"run_dir={tmp_path / 'r'}", *bad)
    assert code == 2 and match in err
    assert not (tmp_path / "r").exists()


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    from tests.rl import reward_fns

    reward_fns.CALLS["n"] = 0
    with pytest.raises(UserError, match=r"nan at step 3.*last good checkpoint kept: .*step-2"):
        _run(tmp_path, "nan", "reward.kind=custom", "reward.function=tests.rl.reward_fns:exploding",
             "algo.scale_rewards=none", "steps=5", "save_every=1", "eval_every=0")
    assert not (tmp_path / "nan" / "final").exists()
    assert [p.name for p in (tmp_path / "nan" / "checkpoints").iterdir()] == ["step-2"]


def _strip(recs):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in recs]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = SMALL + ["steps=4", "save_every=2", "eval_every=2", "algo.num_iterations=2"]
    full = _run(tmp_path, "full", *args[len(SMALL):])
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "reasoner", "train-rl", *args, f"run_dir={run_dir}"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run_dir / "checkpoints" / "step-2").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (run_dir / "final").exists()
    resumed = _run(tmp_path, "killed", *args[len(SMALL):])
    a, b = _strip(full), _strip(resumed)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-4, abs=1e-6), (ra["step"], k)


def test_resume_from_an_earlier_checkpoint_writes_each_pool_record_once(tmp_path, monkeypatch):
    """pool.jsonl gets each step's correct trajectories once across a crash and a resume from an
    earlier checkpoint (the steps after it run again and used to append theirs a second time)."""
    from reasoner.rl import recipe as online

    def correct_records(samples, rewards, fresh, step, algo):   # one "verified" record per step
        return [{"id": f"p/rl{step}", "problem_id": "p", "prompt": "q", "response": "Answer: 1",
                 "steps": ["Answer: 1"], "pred_answer": "1", "reward": 1.0, "meta": {"step": step + 1}}]

    real_step = online.OnlineRecipe.train_step

    def crash_before_step_4(self, step):
        if step == 3:
            raise KeyboardInterrupt   # after step 3 appended its records, before the next checkpoint
        return real_step(self, step)

    monkeypatch.setattr(online, "correct_records", correct_records)
    monkeypatch.setattr(online.OnlineRecipe, "train_step", crash_before_step_4)
    args = ("steps=4", "save_every=2", "eval_every=0")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "pool", *args)
    pool = tmp_path / "pool" / "pool.jsonl"
    assert [json.loads(x)["meta"]["step"] for x in pool.read_text().splitlines()] == [1, 2, 3]
    monkeypatch.setattr(online.OnlineRecipe, "train_step", real_step)
    _run(tmp_path, "pool", *args)                       # resumes from step-2: steps 3 and 4 run again
    assert [json.loads(x)["meta"]["step"] for x in pool.read_text().splitlines()] == [1, 2, 3, 4]
