"""Records, readers, atomic / crash-safe io, and PRM-format converters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reasoner.data import (
    Problem, Trajectory, iter_rows, math_shepherd_to_trl_prm, parse_math_shepherd, read_problems,
    read_records, read_rows, read_trajectories, split_steps, trajectory_to_trl_prm, trl_prm_to_trajectory,
)
from reasoner.errors import DataError, UserError
from reasoner.utils.io import append_jsonl, read_jsonl_tolerant, write_json_atomic, write_jsonl_atomic

REPO = Path(__file__).resolve().parents[1]


def problem(**kw) -> Problem:
    base = dict(id="p1", prompt="What is 2+2?", answer="4", source="test", solution_steps=["2 + 2 = 4"],
                meta={"k": 1})
    base.update(kw)
    return Problem(**base)


def trajectory(**kw) -> Trajectory:
    base = dict(id="p1/0", problem_id="p1", prompt="Q: 2+2?\n", response="2 + 2 = 4\nAnswer: 4",
                steps=["2 + 2 = 4", "Answer: 4"], pred_answer="4", reward=1.0, step_labels=[1.0, 0.5],
                meta={"temperature": 0.7})
    base.update(kw)
    return Trajectory(**base)


# ----------------------------------------------------------------------------- records

def test_problem_and_trajectory_round_trip(tmp_path):
    p, t = problem(), trajectory()
    assert Problem.from_dict(p.to_dict()) == p
    assert Trajectory.from_dict(t.to_dict()) == t
    write_jsonl_atomic(tmp_path / "p.jsonl", [p, problem(id="p2", solution_steps=None, meta={})])
    write_jsonl_atomic(tmp_path / "t.jsonl", [t.to_dict(), trajectory(id="p1/1", step_labels=None)])
    assert read_problems(tmp_path / "p.jsonl")[0] == p
    assert read_problems(tmp_path / "p.jsonl")[1].solution_steps is None
    trajs = read_trajectories(tmp_path / "t.jsonl")
    assert trajs[0] == t and trajs[1].step_labels is None
    assert read_records(tmp_path / "t.jsonl", "trajectory") == trajs


def test_from_dict_fills_defaults_and_accepts_null_labels():
    d = trajectory().to_dict()
    del d["meta"]
    d["step_labels"] = [None, 1]
    t = Trajectory.from_dict(d)
    assert t.meta == {} and t.step_labels == [None, 1.0]


@pytest.mark.parametrize("change, field, text", [
    (lambda d: d.pop("prompt"), "prompt", "missing"),
    (lambda d: d.update(prompt="   "), "prompt", "empty"),
    (lambda d: d.update(reward="1"), "reward", "number"),
    (lambda d: d.update(steps="a\nb"), "steps", "list"),
    (lambda d: d.update(steps=["a", 3]), "steps", "item 1"),
    (lambda d: d.update(step_labels=[1.0]), "step_labels", "1 labels but there are 2 steps"),
    (lambda d: d.update(step_labels=[1.0, 1.5]), "step_labels", "[0, 1]"),
    (lambda d: d.update(pred_answer=4), "pred_answer", "string"),
    (lambda d: d.update(meta=[]), "meta", "object"),
])
def test_trajectory_validation_names_file_line_field(change, field, text):
    d = trajectory().to_dict()
    change(d)
    with pytest.raises(DataError) as err:
        Trajectory.from_dict(d, path="runs/x.jsonl", line=7)
    msg = str(err.value)
    assert msg.startswith("runs/x.jsonl:7: field '%s':" % field) and text in msg
    assert (err.value.path, err.value.line, err.value.field) == ("runs/x.jsonl", 7, field)


def test_problem_validation_and_non_object():
    with pytest.raises(DataError, match=r"^f.jsonl:3: field 'answer': expected a string"):
        Problem.from_dict({**problem().to_dict(), "answer": 4}, "f.jsonl", 3)
    with pytest.raises(DataError, match=r"^f.jsonl:2: expected a JSON object, got a list"):
        Problem.from_dict([1], "f.jsonl", 2)


def test_read_problems_reports_bad_line(tmp_path):
    f = tmp_path / "p.jsonl"
    good = json.dumps(problem().to_dict())
    f.write_text(good + "\n\n" + json.dumps({**problem().to_dict(), "id": ""}) + "\n")
    with pytest.raises(DataError, match=r"p.jsonl:3: field 'id': is empty"):
        read_problems(f)


def test_split_steps():
    assert split_steps("a\n\n b \n", "\n") == ["a", "b"]
    assert split_steps("p1\nx\n\np2\n\n\n", "\n\n") == ["p1\nx", "p2"]


# ----------------------------------------------------------------------------- readers

def test_jsonl_invalid_json_and_utf8(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_bytes(b'{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:3: invalid JSON"):
        list(read_rows(f))
    f.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid UTF-8"):
        list(read_rows(f))
    f.write_bytes(b'{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: expected a JSON object"):
        list(read_rows(f))


def test_jsonl_lines_are_one_based_and_skip_blanks(tmp_path):
    f = tmp_path / "ok.jsonl"
    f.write_text('\ufeff{"a": 1}\n\n{"a": 2}\n')
    assert list(read_rows(f)) == [(1, {"a": 1}), (3, {"a": 2})]


def test_json_list_and_wrapped(tmp_path):
    f = tmp_path / "x.json"
    f.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    assert list(read_rows(f)) == [(0, {"a": 1}), (1, {"a": 2})]
    f.write_text(json.dumps({"data": [{"a": 3}]}))
    assert list(read_rows(f)) == [(0, {"a": 3})]
    f.write_text('{"a": 1}\n{"a": 2}\n')            # JSON lines named .json
    assert [r for _, r in read_rows(f)] == [{"a": 1}, {"a": 2}]
    f.write_text(json.dumps([{"a": 1}, 5]))
    with pytest.raises(DataError, match=r"x.json:1: expected an object"):
        list(read_rows(f))


def test_parquet_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist([{"q": "a", "n": 1}, {"q": "b", "n": 2}]), f)
    assert list(read_rows(f)) == [(0, {"q": "a", "n": 1}), (1, {"q": "b", "n": 2})]


def test_saved_dataset_directory(tmp_path):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list([{"q": "a"}]),
                               "test": datasets.Dataset.from_list([{"q": "t1"}, {"q": "t2"}])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert [r["q"] for _, r in read_rows(tmp_path / "dd", split="test")] == ["t1", "t2"]
    assert [r["q"] for _, r in read_rows(tmp_path / "dd")] == ["a"]
    with pytest.raises(UserError, match="no split 'dev'"):
        list(read_rows(tmp_path / "dd", split="dev"))
    datasets.Dataset.from_list([{"q": "only"}]).save_to_disk(str(tmp_path / "ds"))
    assert [r["q"] for _, r in read_rows(tmp_path / "ds", split="train")] == ["only"]


def test_directory_of_files_picks_split(tmp_path):
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "train.jsonl").write_text('{"s": "train"}\n')
    (d / "sub" / "test-00000-of-00001.jsonl").write_text('{"s": "test"}\n')
    rows = list(iter_rows(d, split="test"))
    assert rows == [(str(d / "sub" / "test-00000-of-00001.jsonl"), 1, {"s": "test"})]
    assert [r["s"] for _, r in read_rows(d)] == ["test", "train"]     # all files, path order
    with pytest.raises(UserError, match="no file for split 'dev'"):
        list(read_rows(d, split="dev"))


def test_missing_path_and_hub_failure(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no such file or directory"):
        list(read_rows(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match="unsupported file type"):
        (tmp_path / "x.txt").write_text("hi")
        list(read_rows(tmp_path / "x.txt"))

    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network\nsecond line")

    from reasoner.utils import hub

    monkeypatch.setattr(hub, "status", lambda name, kind: "found")  # the hub answered; the load fails
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError) as err:
        list(read_rows("someone/some-dataset", split="train"))
    assert str(err.value) == ("dataset 'someone/some-dataset': not a file/directory and could not be "
                              "loaded from the hub: no network")


def test_hub_rows_pass_name_config_and_split(monkeypatch):
    import datasets

    seen = {}

    def fake(name, config=None, split=None):
        seen.update(name=name, config=config, split=split)
        return [{"q": "x"}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert list(read_rows("org/name", split="test", config="main")) == [(0, {"q": "x"})]
    assert seen == {"name": "org/name", "config": "main", "split": "test"}


# ----------------------------------------------------------------------------- io

def test_atomic_writes_leave_no_temp_files(tmp_path):
    write_jsonl_atomic(tmp_path / "a.jsonl", [{"x": 1}, {"x": "é"}])
    write_jsonl_atomic(tmp_path / "a.jsonl", [{"x": 2}])
    write_json_atomic(tmp_path / "sub" / "s.json", {"acc": 0.5})
    assert (tmp_path / "a.jsonl").read_text() == '{"x": 2}\n'
    assert json.loads((tmp_path / "sub" / "s.json").read_text()) == {"acc": 0.5}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.jsonl", "s.json", "sub"]


def test_torn_trailing_line_dropped_then_repaired(tmp_path):
    f = tmp_path / "out.jsonl"
    assert append_jsonl(f, [{"i": 0}, {"i": 1}]) == 2
    with open(f, "ab") as fh:                        # what a crash mid-write leaves
        fh.write(b'{"i": 2, "tex')
    assert read_jsonl_tolerant(f) == ([{"i": 0}, {"i": 1}], 1)
    append_jsonl(f, [{"i": 2}])                      # resume: the torn tail is removed first
    assert read_jsonl_tolerant(f) == ([{"i": 0}, {"i": 1}, {"i": 2}], 0)
    with open(f, "ab") as fh:                        # a complete record without newline is kept
        fh.write(b'{"i": 3}')
    append_jsonl(f, [{"i": 4}])
    assert [r["i"] for r in read_jsonl_tolerant(f)[0]] == [0, 1, 2, 3, 4]


def test_corruption_in_the_middle_is_an_error(tmp_path):
    f = tmp_path / "out.jsonl"
    f.write_text('{"i": 0}\n{"i": 1, "x\n{"i": 2}\n')
    with pytest.raises(DataError, match=r"out.jsonl:2: invalid JSON"):
        read_jsonl_tolerant(f)


def test_sigkill_during_appends_never_tears_a_line(tmp_path):
    f = tmp_path / "out.jsonl"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from reasoner.utils.io import append_jsonl
        i = 0
        while True:
            append_jsonl({str(f)!r}, [{{"i": i + j, "pad": "x" * 5000}} for j in range(20)])
            i += 20
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 10
    while (not f.exists() or f.stat().st_size < 200_000) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    records, dropped = read_jsonl_tolerant(f)
    assert records and dropped <= 1
    assert [r["i"] for r in records] == list(range(len(records)))


# ----------------------------------------------------------------------------- PRM formats

def test_trl_prm_round_trip():
    t = trajectory(step_labels=[1.0, 0.25])
    rec = trajectory_to_trl_prm(t)
    assert rec == {"prompt": t.prompt, "completions": t.steps, "labels": [1.0, 0.25]}
    assert trajectory_to_trl_prm(t, threshold=0.5)["labels"] == [True, False]
    back = trl_prm_to_trajectory(rec, problem_id="p1")
    assert (back.prompt, back.steps, back.step_labels, back.reward) == (t.prompt, t.steps, [1.0, 0.25], 0.0)
    assert back.response == "2 + 2 = 4\nAnswer: 4" and back.id == "p1/0"
    hard = trl_prm_to_trajectory({"prompt": "q", "completions": ["a", "b"], "labels": [True, True]})
    assert hard.step_labels == [1.0, 1.0] and hard.reward == 1.0 and hard.problem_id.startswith("prm-")
    with pytest.raises(UserError, match="every step needs a label"):
        trajectory_to_trl_prm(trajectory(step_labels=[1.0, None]))
    with pytest.raises(DataError, match=r"prm.jsonl:4: field 'labels': has 1 labels but there are 2 steps"):
        trl_prm_to_trajectory({"prompt": "q", "completions": ["a", "b"], "labels": [True]}, "prm.jsonl", 4)


MS_INPUT = ("Janet has 3 apples and buys 2 more. How many? Step 1: She has 3 + 2 = 5 apples. ки\n"
            "Step 2: So she has 6 apples. ки\nStep 3: The answer is: 6 ки")
MS_LABEL = ("Janet has 3 apples and buys 2 more. How many? Step 1: She has 3 + 2 = 5 apples. +\n"
            "Step 2: So she has 6 apples. -\nStep 3: The answer is: 6 -")


def test_parse_math_shepherd():
    prompt, steps, labels = parse_math_shepherd(MS_INPUT, MS_LABEL)
    assert prompt == "Janet has 3 apples and buys 2 more. How many?"
    assert steps == ["Step 1: She has 3 + 2 = 5 apples.", "Step 2: So she has 6 apples.", "Step 3: The answer is: 6"]
    assert labels == [True, False, False]
    assert parse_math_shepherd(MS_INPUT)[2] == [None, None, None]
    assert parse_math_shepherd("a ки b ки")[0:2] == (None, ["a", "b"])
    assert math_shepherd_to_trl_prm(MS_INPUT, MS_LABEL)["labels"] == [True, False, False]
    with pytest.raises(ValueError, match="no 'ки' step tags"):
        parse_math_shepherd("no tags here")
    with pytest.raises(ValueError, match="step 1"):
        parse_math_shepherd(MS_INPUT, MS_INPUT.replace("ки", "x"))


def test_missing_relative_dataset_path_fails_fast_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    """`runs/nope` (no runs/ here) is tried on the hub once, then read offline: one line in
    seconds, not ~25 s of client retries."""
    import time

    from reasoner.utils import hub

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hub, "_ask", lambda repo, kind, timeout: "unreachable")
    started = time.time()
    with pytest.raises(UserError, match="could not be reached") as err:
        list(read_rows("runs/nope"))
    assert time.time() - started < 5 and "'runs/nope'" in str(err.value)
    monkeypatch.setattr(hub, "_ask", lambda repo, kind, timeout: "missing")
    with pytest.raises(UserError, match="nor a dataset on the Hugging Face Hub"):
        list(read_rows("runs/nope"))


@pytest.mark.parametrize("name,content", [("e.jsonl", b""), ("e.json", b"[]"), ("b.jsonl", b"\n\n")])
def test_input_without_records_is_an_error_naming_it(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match="holds no records") as err:
        list(read_rows(tmp_path / name))
    assert str(err.value).startswith(str(tmp_path / name))


def test_trajectory_steps_must_match_the_response():
    from reasoner.data import Trajectory

    good = {"id": "p/0", "problem_id": "p", "prompt": "q", "response": "a = 1\nb = 2\nAnswer: 2",
            "steps": ["a = 1", "b = 2", "Answer: 2"], "pred_answer": "2", "reward": 1.0}
    assert Trajectory.from_dict(good).steps == good["steps"]
    assert Trajectory.from_dict({**good, "response": "", "steps": []}).steps == []   # an empty sample
    for steps, message in ((["b = 2", "a = 1"], "item 1: 'a = 1' does not occur in the response after step 0"),
                           (["a = 1", " "], "item 1: is empty"), ([], "is empty but the response is not")):
        with pytest.raises(DataError, match=message):
            Trajectory.from_dict({**good, "steps": steps}, "t.jsonl", 3)
