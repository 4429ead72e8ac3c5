"""convert: trajectories <-> TRL PRM round trips, Math-Shepherd import, partial labels, and bad
input stopping with one line before anything is written."""

from __future__ import annotations

import json

import pytest

from reasoner import config
from reasoner.data import Trajectory, read_trajectories
from reasoner.errors import DataError
from reasoner.stages import convert


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def traj(i, labels, steps=("a", "b", "c"), reward=0.0):
    return Trajectory(f"p/{i}", "p", "Q\n", "\n".join(steps), list(steps), None, reward, labels).to_dict()


def run(*overrides):
    return convert.run(config.load("convert", list(overrides)))


def test_trajectories_to_trl_and_back(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", [traj(0, [0.5, 0.0, 0.0]), traj(1, [1.0, 1.0, 1.0], reward=1.0)])
    run(f"input={src}", f"output={tmp_path / 'trl.jsonl'}")
    rows = read_jsonl(tmp_path / "trl.jsonl")
    assert rows[0] == {"prompt": "Q\n", "completions": ["a", "b", "c"], "labels": [0.5, 0.0, 0.0]}
    run(f"input={tmp_path / 'trl.jsonl'}", f"output={tmp_path / 'back.jsonl'}", "output_format=trajectories")
    back = read_trajectories(tmp_path / "back.jsonl")
    assert [t.step_labels for t in back] == [[0.5, 0.0, 0.0], [1.0, 1.0, 1.0]]
    assert [t.reward for t in back] == [0.0, 1.0] and [t.id for t in back] == [f"{back[0].problem_id}/0", f"{back[0].problem_id}/1"]
    run(f"input={tmp_path / 'back.jsonl'}", f"output={tmp_path / 'trl2.jsonl'}")
    assert read_jsonl(tmp_path / "trl2.jsonl") == rows


def test_hard_labels_and_partial_policies(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", [traj(0, [None, 0.5, None, 0.0], steps=("a", "b", "c", "d")),
                                             traj(1, None), traj(2, [0.25, 0.0, 0.0])])
    result = run(f"input={src}", f"output={tmp_path / 'fill.jsonl'}", "label_type=hard")
    assert read_jsonl(tmp_path / "fill.jsonl") == [
        {"prompt": "Q\n", "completions": ["a", "b"], "labels": [True, True]},
        {"prompt": "Q\n", "completions": ["a", "b", "c"], "labels": [True, False, False]}]
    assert result["skipped_unlabelled"] == 1 and result["truncated"] == 1 and result["filled_labels"] == 1
    result = run(f"input={src}", f"output={tmp_path / 'skip.jsonl'}", "partial=skip")
    assert result["written"] == 1
    with pytest.raises(DataError, match=f"{src}:1: field 'step_labels'"):
        run(f"input={src}", f"output={tmp_path / 'err.jsonl'}", "partial=error")
    assert not (tmp_path / "err.jsonl").exists()


def test_math_shepherd_import(tmp_path):
    row = {"input": "Q? Step 1: x ки\nStep 2: y ки", "label": "Q? Step 1: x +\nStep 2: y -", "task": "GSM8K"}
    src = write_jsonl(tmp_path / "ms.jsonl", [row, row])
    run(f"input={src}", f"output={tmp_path / 'trl.jsonl'}")
    assert read_jsonl(tmp_path / "trl.jsonl")[0] == {"prompt": "Q?", "completions": ["Step 1: x", "Step 2: y"],
                                                     "labels": [1.0, 0.0]}
    run(f"input={src}", f"output={tmp_path / 't.jsonl'}", "output_format=trajectories")
    ids = [t.id for t in read_trajectories(tmp_path / "t.jsonl")]
    assert len(set(ids)) == 2


@pytest.mark.parametrize("rows,message", [
    ([{"prompt": "Q", "completions": ["a", "b"], "labels": [True]}], ":1: field 'labels': has 1 labels but there are 2 steps"),
    ([{"what": 1}], ":1: cannot tell the format"),
    ([{"prompt": "Q", "completions": ["a"], "labels": [1]}, {"what": 1}], ":2: field 'prompt': missing"),
    ([{"steps": ["a"], "problem_id": "p"}], ":1: field 'id': missing"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, cli, rows, message):
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    code, _, err = cli("convert", f"input={src}", f"output={out}", "output_format=trajectories")
    assert code == 2 and f"{src}{message}" in err and err.strip().count("\n") == 0
    assert not out.exists()


def test_missing_input_file(tmp_path, cli):
    code, _, err = cli("convert", f"input={tmp_path / 'nope.jsonl'}", f"output={tmp_path / 'o.jsonl'}")
    assert code == 2 and "no such file" in err
