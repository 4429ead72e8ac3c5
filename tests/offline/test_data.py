"""Trajectory tokenisation with step indices, shifted-coordinate batches, DPO pairs, input errors."""

from __future__ import annotations

import json

import pytest

from reasoner.config import ModelConfig, TinyConfig
from reasoner.data import Trajectory
from reasoner.errors import DataError
from reasoner.offline.data import Sequence, collate, dpo_pairs, encode_trajectory, read_offline_trajectories


@pytest.fixture(scope="module")
def tok():
    from reasoner.models import load_tokenizer

    return load_tokenizer(ModelConfig(name_or_path="tiny-arith", tiny=TinyConfig(hidden_size=32)))


def traj(response, steps, reward=1.0, finish="stop", pid="p"):
    return Trajectory(id=f"{pid}/0", problem_id=pid, prompt="Compute: 1 + 2", response=response, steps=steps,
                      pred_answer=None, reward=reward, meta={"finish_reason": finish})


def test_encode_steps_and_eos(tok):
    t = traj("1 + 2 = 3\nAnswer: 3", ["1 + 2 = 3", "Answer: 3"])
    s = encode_trajectory(tok, t, "\n", 512)
    text = tok.decode(s.response_ids[:-1])
    assert text == t.response and s.response_ids[-1] == tok.eos_token_id
    # step 0 = "1 + 2 = 3" (9 chars); step 1 = "\nAnswer: 3" (10 chars) + EOS
    assert s.step_of_token == [0] * 9 + [1] * 11
    from reasoner.prompts import encode_prompt

    assert s.prompt_ids == encode_prompt(tok, "Compute: 1 + 2")


def test_encode_length_cut_has_no_eos_and_mismatch_is_one_step(tok):
    s = encode_trajectory(tok, traj("1 + 2 = 3\n3 *", ["1 + 2 = 3", "3 *"], finish="length"), "\n", 512)
    assert s.response_ids[-1] != tok.eos_token_id
    s = encode_trajectory(tok, traj("a\nb", ["x", "y"]), "\n", 512)  # steps do not rejoin: one step
    assert set(s.step_of_token) == {0}


def test_encode_truncates_on_the_right(tok):
    t = traj("1 + 2 = 3\nAnswer: 3", ["1 + 2 = 3", "Answer: 3"])
    full = encode_trajectory(tok, t, "\n", 512)
    cut = encode_trajectory(tok, t, "\n", len(full.prompt_ids) + 4)
    assert cut.response_ids == full.response_ids[:4] and cut.step_of_token == [0] * 4


def test_collate_shifted_coordinates():
    # prompt [5, 6] (P=2), response [7, 8, 9] with steps [0, 1, 1]; second row has a 1-token prompt
    a = Sequence("p", [5, 6], [7, 8, 9], [0, 1, 1], 1.0)
    b = Sequence("q", [5], [7], [0], 0.0)
    batch = collate([a, b], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 7, 0, 0, 0]]
    assert batch["targets"].tolist() == [[6, 7, 8, 9], [7, 0, 0, 0]]
    # index j predicts ids[j+1]: actions are the response tokens only
    assert batch["action_mask"].tolist() == [[0, 1, 1, 1], [1, 0, 0, 0]]
    assert batch["step_ids"].tolist() == [[-1, 0, 1, 1], [0, -1, -1, -1]]
    # the state before step k is the index whose action is step k's first token
    assert batch["step_first"].tolist() == [[1, 2], [0, 0]]
    assert batch["step_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["rewards"].tolist() == [1.0, 0.0]


def test_dpo_pairs_cycle_the_shorter_side():
    pos = [Sequence("p", [1], [2], [0], 1.0) for _ in range(3)]
    neg = [Sequence("p", [1], [3], [0], 0.0)]
    only_pos = [Sequence("q", [1], [2], [0], 1.0)]
    pairs = dpo_pairs(pos + neg + only_pos)
    assert len(pairs) == 3
    assert [c for c, _ in pairs] == pos and all(r is neg[0] for _, r in pairs)


def test_bad_reward_names_file_line_field(tmp_path):
    good = traj("1 + 2 = 3\nAnswer: 3", ["1 + 2 = 3", "Answer: 3"]).to_dict()
    bad = dict(good, reward=0.5)
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"t\.jsonl:2: field 'reward'"):
        read_offline_trajectories(str(path))
