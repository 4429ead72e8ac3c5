"""Rewards as TRL users write them: reward.functions=[...] with reward.weights, the dataset's own
columns as **columns, each function's mean logged as reward/<name>, the verifier as a named reward."""

from __future__ import annotations

import json

import pytest

from reasoner import config
from reasoner.config import RewardConfig
from reasoner.data import Problem
from reasoner.errors import UserError
from reasoner.rl.rewards import RewardModel, verifier
from reasoner.tasks import get_task
from tests.conftest import TINY

TASK = get_task("arith")
P = Problem(id="p", prompt="Compute: 1 + 2", answer="3", source="arith", meta={"difficulty": 2, "topic": "add"})
Q = Problem(id="q", prompt="Compute: 2 + 2", answer="4", source="arith", meta={"difficulty": 5})


def test_the_reward_is_the_weighted_sum_of_the_functions():
    rm = RewardModel(RewardConfig(functions=["reasoner.rl.rewards:verifier", "tests.rl.reward_fns:by_difficulty"],
                                  weights=[1.0, 0.5]), TASK)
    r = rm([P, Q], ["x", "y"], ["1 + 2 = 3\nAnswer: 3", "Answer: 5"], [[1], [2]])
    assert r.outcome == [1.0 + 0.5 * 2, 0.0 + 0.5 * 5] and r.correct == [True, False]
    assert r.parts == [{"verifier": 1.0, "by_difficulty": 2.0}, {"verifier": 0.0, "by_difficulty": 5.0}]



def test_answered_is_a_format_reward_by_the_runs_own_extraction():
    """1 for any committed answer, right or wrong; 0 when the grader finds none."""
    from reasoner.rl.rewards import answered

    rm = RewardModel(RewardConfig(functions=["reasoner.rl.rewards:verifier", "reasoner.rl.rewards:answered"],
                                  weights=[1.0, 0.2]), TASK)
    r = rm([P, Q, Q], ["x", "y", "z"], ["Answer: 3", "Answer: 5", "2 + 2 is 4"], [[1], [2], [3]])
    assert r.outcome == [1.2, 0.2, 0.0]
    assert [p["answered"] for p in r.parts] == [1.0, 1.0, 0.0]
    assert answered(["x", "y"], ["Answer: 7", "no idea"]) == [1.0, 0.0]

def test_functions_get_the_problems_own_columns_one_value_per_completion():
    seen = {}

    def spy(prompts, completions, **cols):
        seen.update(cols)
        return [0.0] * len(completions)

    import sys
    import types

    sys.modules["reward_spy_t15"] = types.SimpleNamespace(spy=spy)
    try:
        RewardModel(RewardConfig(functions=["reward_spy_t15:spy"]), TASK)([P, Q], ["x", "y"], ["a", "b"], [[1], [2, 3]])
    finally:
        del sys.modules["reward_spy_t15"]
    assert seen == {"answer": ["3", "4"], "problem_id": ["p", "q"], "completion_ids": [[1], [2, 3]],
                    "difficulty": [2, 5], "topic": ["add", None]}


def test_the_legacy_custom_function_is_the_one_function_form():
    a = RewardModel(RewardConfig(kind="custom", function="tests.rl.reward_fns:length_reward"), TASK)
    b = RewardModel(RewardConfig(functions=["tests.rl.reward_fns:length_reward"]), TASK)
    args = ([P, P], ["x", "x"], ["Answer: 3", "ab"], [[1], [2]])
    assert a(*args).outcome == b(*args).outcome == pytest.approx([1 / 10, 1 / 3])


@pytest.mark.parametrize("kw,message", [
    ({"functions": ["tests.rl.reward_fns:length_reward"], "weights": [1.0, 2.0]}, "reward.weights has 2 entries for 1"),
    ({"function": "tests.rl.reward_fns:length_reward"}, "reward.function is read with reward.kind=custom only"),
    ({"kind": "custom", "function": "tests.rl.reward_fns:length_reward", "functions": ["tests.rl.reward_fns:length_reward"]},
     "not both"),
    ({"kind": "custom"}, "reward.kind=custom needs reward.functions"),
    ({"kind": "prm", "functions": ["tests.rl.reward_fns:length_reward"]}, "reward.kind=prm takes its reward from the PRM"),
    ({"functions": ["tests.rl.reward_fns:length_reward", "tests.rl.reward_fns:missing"]},
     "reward.functions[1] 'tests.rl.reward_fns:missing': module 'tests.rl.reward_fns' has no function 'missing'"),
])
def test_bad_reward_configs_are_one_line(kw, message):
    with pytest.raises(UserError) as err:
        RewardModel(RewardConfig(**kw), TASK)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_named_verifier_grades_on_its_own_too():
    assert verifier(["q", "q"], ["Answer: 3", "Answer: 4"], ["3", "3"]) == [1.0, 0.0]


def test_train_rl_logs_each_reward_functions_mean_from_a_jsonl_datasets_columns(tmp_path):
    from reasoner.stages.train_rl import run

    data = tmp_path / "probs.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Compute: {i} + 1", "answer": str(i + 1),
                                        "difficulty": i % 3}) + "\n" for i in range(6)))
    cfg = config.load("train_rl", TINY + [
        "data=jsonl", f"data.path={data}", "prompts_per_step=2", "generation.n=2", "generation.max_new_tokens=6",
        "batch_size=4", "steps=1", "eval_every=0", "save_every=0", f"run_dir={tmp_path / 'run'}",
        "reward.functions=[reasoner.rl.rewards:verifier,tests.rl.reward_fns:by_difficulty]", "reward.weights=[1.0,0.5]"])
    run(cfg)
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert rec["reward"] == pytest.approx(rec["reward/verifier"] + 0.5 * rec["reward/by_difficulty"], abs=1e-5)
    assert rec["reward/verifier"] == rec["accuracy"]
