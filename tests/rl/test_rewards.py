"""Reward sources: verifier, custom functions by dotted path, step-end token positions."""

from __future__ import annotations

import pytest

from reasoner.config import RewardConfig
from reasoner.data import Problem
from reasoner.errors import UserError
from reasoner.rl.rewards import RewardModel, load_function, step_end_tokens
from reasoner.tasks import get_task

TASK = get_task("arith")
P = Problem(id="p", prompt="Compute: 1 + 2", answer="3", source="arith")


def _rm(**kw):
    return RewardModel(RewardConfig(**kw), TASK)


def test_verifier_rewards_and_steps():
    r = _rm()([P, P], ["x", "x"], ["1 + 2 = 3\nAnswer: 3", "Answer: 4"], [[1], [2]])
    assert r.outcome == [1.0, 0.0] and r.correct == [True, False]
    assert r.steps[0] == ["1 + 2 = 3", "Answer: 3"] and r.step_rewards is None


def test_rewards_carry_the_graded_answers_through_concat_and_take():
    from reasoner.rl.rewards import Rewards

    r = _rm()([P, P], ["x", "x"], ["1 + 2 = 3\nAnswer: 3", "no answer"], [[1], [2]])
    assert r.answers == ["3", None]
    both = Rewards.concat([r, r.take([1, 0])])
    assert both.answers == ["3", None, None, "3"] and both.correct == [True, False, False, True]
    assert both.step_rewards is None and Rewards.concat([]).outcome == []


def test_custom_function_gets_trl_signature_and_keeps_accuracy():
    r = _rm(kind="custom", function="tests.rl.reward_fns:length_reward")([P, P], ["x", "x"], ["Answer: 3", "ab"], [[1], [2]])
    assert r.outcome == pytest.approx([1 / 10, 1 / 3]) and r.correct == [True, False]
    assert load_function("tests.rl.reward_fns.length_reward") is load_function("tests.rl.reward_fns:length_reward")


@pytest.mark.parametrize("spec", ["nope.module:f", "tests.rl.reward_fns:missing", "nodots", ""])
def test_bad_function_specs_are_user_errors(spec):
    with pytest.raises(UserError, match="reward.function"):
        _rm(kind="custom", function=spec)


def test_bad_returns_and_kinds_are_user_errors():
    with pytest.raises(UserError, match="returned 1 rewards for 2"):
        _rm(kind="custom", function="tests.rl.reward_fns:wrong_length")([P, P], ["x", "x"], ["a", "b"], [[1], [2]])
    with pytest.raises(UserError, match="reward.kind"):
        _rm(kind="bogus")
    with pytest.raises(UserError, match="scorer"):
        _rm(kind="prm")


USER_MODULE = """
def fn(prompts, completions, **cols):
    return [float(len(c)) for c in completions]

def boom(prompts, completions, **cols):
    raise KeyError("answer_text")
"""


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A reward module beside the user, in a working directory that is not on sys.path (as with
    the installed `reasoner` command, whose sys.path[0] is its bin directory)."""
    import os
    import sys

    (tmp_path / "myrewards_t12.py").write_text(USER_MODULE)
    (tmp_path / "broken_t12.py").write_text("import no_such_dependency_t12\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])
    for name in ("myrewards_t12", "broken_t12"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_custom_module_in_the_working_directory_is_importable(user_dir):
    import sys

    before = list(sys.path)
    assert load_function("myrewards_t12:fn")(["q"], ["abc"]) == [3.0]
    assert load_function("myrewards_t12.py:fn")(["q"], ["ab"]) == [2.0]      # a file path works too
    assert load_function(str(user_dir / "myrewards_t12.py") + ":fn")(["q"], ["a"]) == [1.0]
    assert sys.path == before                                                # only for the import
    with pytest.raises(UserError, match=r"cannot import module 'broken_t12' \(ModuleNotFoundError: No module named"):
        load_function("broken_t12:f")


def test_exception_in_the_custom_function_is_one_line_naming_it(user_dir):
    with pytest.raises(UserError) as err:
        _rm(kind="custom", function="myrewards_t12:boom")([P], ["x"], ["Answer: 3"], [[1]])
    assert str(err.value) == "reward.function 'myrewards_t12:boom' raised KeyError: 'answer_text'"


def test_cli_custom_reward_error_is_exit_2_without_traceback(user_dir, cli):
    from tests.conftest import TINY

    code, _, err = cli("train-rl", *TINY, f"run_dir={user_dir / 'run'}", "data.num_problems=4", "prompts_per_step=1",
                       "generation.n=2", "generation.max_new_tokens=4", "steps=1", "eval_every=0", "save_every=0",
                       "reward.kind=custom", "reward.function=myrewards_t12:boom")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: reward.function 'myrewards_t12:boom' raised KeyError: 'answer_text'"
    assert not (user_dir / "run" / "final").exists()


class _CharTok:
    def decode(self, ids, skip_special_tokens=True):
        return "" if ids[0] == 0 else chr(ids[0])


def test_step_end_tokens_on_characters():
    text = "ab\ncd\nAnswer: 1"
    ids = [ord(c) for c in text] + [0]  # trailing EOS decodes to nothing
    steps = ["ab", "cd", "Answer: 1"]
    assert step_end_tokens(_CharTok(), ids, text, steps) == [1, 4, len(text) - 1]
