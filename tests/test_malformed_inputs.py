"""A corpus of malformed input files run through the CLI against every command that reads them.

Problem files (`data=FILE`) go to decode, collect and online train-rl; trajectory files
(`train_file=FILE`) to train-prm, offline train-rl, train-sft and eval-prm (`eval_file=`). Every
case must stop with exit code 2 and exactly one stderr line `error: ...` that names the file
(and the line / field where there is one), with no traceback, before any model is loaded, and
nothing in the run_dir that marks a run complete (summary.json, final/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import TINY


def _jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode("utf-8")


def _parquet(rows: list[dict]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)

    return write


def _directory(files: dict[str, bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.mkdir()
        for name, data in files.items():
            (path / name).write_bytes(data)

    return write


@dataclass
class Case:
    id: str
    name: str                       # file name in the test's directory
    content: bytes | Callable[[Path], None] | None   # None: the file does not exist
    where: str = ""                 # substring the message must hold besides the file name (":2:", "'answer'")
    commands: tuple[str, ...] | None = None   # None: every command of the table

    def write(self, root: Path) -> Path:
        path = root / self.name
        if isinstance(self.content, bytes):
            path.write_bytes(self.content)
        elif self.content is not None:
            self.content(path)
        return path


GOOD_PROBLEM = {"prompt": "1+2", "answer": "3"}
BIG = "1+" * (1 << 20) + "1"          # a 2 MB prompt

PROBLEM_CASES = [
    Case("empty", "empty.jsonl", b""),
    Case("blank-lines", "blank.jsonl", b"\n  \n\t\r\n"),
    Case("not-json", "text.jsonl", b"what is 1+2?\n", ":1:"),
    Case("torn-last-line", "torn.jsonl", _jsonl(GOOD_PROBLEM) + b'{"prompt": "1+1", "ans', ":2:"),
    Case("array-per-line", "array.jsonl", _jsonl([1, 2]), ":1:"),
    Case("null-per-line", "null.jsonl", _jsonl("null"), ":1:"),
    Case("string-per-line", "string.jsonl", _jsonl('"1+2"'), ":1:"),
    Case("missing-prompt", "noprompt.jsonl", _jsonl({"answer": "3"}), "'prompt'"),
    Case("missing-answer", "noanswer.jsonl", _jsonl({"prompt": "1+2"}), "'answer'"),
    Case("prompt-number", "promptnum.jsonl", _jsonl({"prompt": 12, "answer": "3"}), "'prompt'"),
    Case("prompt-list", "promptlist.jsonl", _jsonl({"prompt": ["1+2"], "answer": "3"}), "'prompt'"),
    Case("prompt-null", "promptnull.jsonl", _jsonl({"prompt": None, "answer": "3"}), "'prompt'"),
    Case("prompt-object", "promptobj.jsonl", _jsonl({"prompt": {"text": "1+2"}, "answer": "3"}), "'prompt'"),
    Case("answer-list", "answerlist.jsonl", _jsonl({"prompt": "1+2", "answer": [3]}), "'answer'"),
    Case("answer-null", "answernull.jsonl", _jsonl({"prompt": "1+2", "answer": None}), "'answer'"),
    Case("answer-bool", "answerbool.jsonl", _jsonl({"prompt": "1+2", "answer": True}), "'answer'"),
    Case("answer-nan", "answernan.jsonl", _jsonl('{"prompt": "1+2", "answer": NaN}'), "'answer'"),
    Case("answer-infinity", "answerinf.jsonl", _jsonl('{"prompt": "1+2", "answer": -Infinity}'), "'answer'"),
    Case("empty-prompt", "emptyprompt.jsonl", _jsonl({"prompt": "", "answer": "3"}), "'prompt'"),
    Case("blank-prompt", "blankprompt.jsonl", _jsonl({"prompt": " \n\t", "answer": "3"}), "'prompt'"),
    Case("empty-answer", "emptyanswer.jsonl", _jsonl({"prompt": "1+2", "answer": ""}), "'answer'"),
    Case("blank-answer", "blankanswer.jsonl", _jsonl({"prompt": "1+2", "answer": "   "}), "'answer'"),
    Case("id-list", "idlist.jsonl", _jsonl({"id": ["a"], "prompt": "1+2", "answer": "3"}), "'id'"),
    Case("id-empty", "idempty.jsonl", _jsonl({"id": "", "prompt": "1+2", "answer": "3"}), "'id'"),
    Case("id-float", "idfloat.jsonl", _jsonl({"id": 1.5, "prompt": "1+2", "answer": "3"}), "'id'"),
    Case("duplicate-ids", "dup.jsonl", _jsonl({"id": "a", **GOOD_PROBLEM}, {"id": "a", **GOOD_PROBLEM}), ":2:"),
    Case("steps-not-a-list", "stepsstr.jsonl", _jsonl({**GOOD_PROBLEM, "solution_steps": "1+2=3"}), "'solution_steps'"),
    Case("bad-second-line", "second.jsonl", _jsonl(GOOD_PROBLEM, {"prompt": "2+2"}), ":2:"),
    Case("2mb-prompt", "big.jsonl", _jsonl({"prompt": BIG, "answer": "3"}), ":1: field 'prompt'"),
    Case("2mb-prompt-second-line", "big2.jsonl", _jsonl(GOOD_PROBLEM, {"prompt": BIG, "answer": "3"}), ":2:"),
    Case("utf16-with-bom", "utf16.jsonl", json.dumps(GOOD_PROBLEM).encode("utf-16"), ":1:"),
    Case("bom-on-second-line", "bom2.jsonl", _jsonl(GOOD_PROBLEM) + b"\xef\xbb\xbf" + _jsonl(GOOD_PROBLEM), ":2:"),
    Case("latin1", "latin1.jsonl", '{"prompt": "caf\xe9 1+2", "answer": "3"}\n'.encode("latin-1"), ":1:"),
    Case("binary", "binary.jsonl", bytes(range(256)) * 8),
    Case("png-named-jsonl", "image.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)),
    Case("nul-bytes", "nul.jsonl", b"\x00" * 100),
    Case("lone-surrogate", "surrogate.jsonl", _jsonl('{"prompt": "1+2 \\ud800", "answer": "3"}'), "'prompt'"),
    Case("deep-nesting", "deep.jsonl", b"[" * 100_000 + b"\n", ":1:"),
    Case("huge-integer", "hugeint.jsonl", _jsonl('{"prompt": "1+2", "answer": 1' + "0" * 5000 + "}"), ":1:"),
    Case("json-object", "object.json", b'{"prompt": "1+2", "answer": "3"}'),
    Case("json-object-of-lists", "dataobj.json", b'{"data": [1, 2]}'),
    Case("json-empty-list", "emptylist.json", b"[]"),
    Case("json-list-of-scalars", "scalars.json", b'["1+2", "2+2"]'),
    Case("json-invalid", "broken.json", b'[{"prompt": "1+2", "answer": "3"},', "broken.json"),
    Case("json-deep-nesting", "deep.json", b"[" * 100_000),
    Case("directory-empty", "emptydir", _directory({})),
    Case("directory-named-jsonl", "dir.jsonl", _directory({})),
    Case("directory-with-bad-file", "baddir", _directory({"part.jsonl": _jsonl({"prompt": 1, "answer": "3"})}), "part.jsonl"),
    Case("parquet-wrong-columns", "wrong.parquet", _parquet([{"question": "1+2", "solution": "3"}]), "'prompt'"),
    Case("parquet-bytes-prompt", "bytes.parquet", _parquet([{"prompt": b"1+2", "answer": "3"}]), "'prompt'"),
    Case("parquet-garbage", "garbage.parquet", b"PAR1 this is not parquet"),
    Case("parquet-empty", "empty.parquet", _parquet([])),
    Case("saved-dataset-garbage", "saved", _directory({"state.json": b"{not json", "data-00000-of-00001.arrow": b"xx"})),
    Case("gzip", "data.jsonl.gz", b"\x1f\x8b\x08\x00" + bytes(20)),
    Case("device-file", "devnull", lambda path: path.symlink_to("/dev/null")),
    Case("csv", "data.csv", b"prompt,answer\n1+2,3\n"),
    Case("no-extension", "data", b"prompt answer\n"),
    Case("missing-file", "nope.jsonl", None),
]

GOOD_TRAJ = {"id": "p1/0", "problem_id": "p1", "prompt": "1+2\n", "response": "1+2=3\nAnswer: 3",
             "steps": ["1+2=3", "Answer: 3"], "pred_answer": "3", "reward": 1.0, "step_labels": [1.0, 1.0]}


def _traj(**changes) -> dict:
    out = dict(GOOD_TRAJ)
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key)
        else:
            out[key] = value
    return out


_DROP = object()
TRL = {"prompt": "1+2\n", "completions": ["1+2=3", "Answer: 3"], "labels": [True, True]}
TRAJ_COMMANDS = ("train-prm", "train-rl-offline", "train-sft", "eval-prm")

TRAJECTORY_CASES = [
    Case("empty", "empty.jsonl", b""),
    Case("blank-lines", "blank.jsonl", b"\n\n"),
    Case("not-json", "text.jsonl", b"trajectories\n", ":1:"),
    Case("array-per-line", "array.jsonl", _jsonl([GOOD_TRAJ]), ":1:"),
    Case("torn-last-line", "torn.jsonl", _jsonl(GOOD_TRAJ) + b'{"id": "p1/1", "prob', ":2:"),
    *[Case(f"missing-{k}", f"no{k}.jsonl", _jsonl(_traj(**{k: _DROP})), f"'{k}'")
      for k in ("id", "problem_id", "prompt", "response", "steps", "reward")],
    Case("steps-string", "stepsstr.jsonl", _jsonl(_traj(steps="1+2=3\nAnswer: 3")), "'steps'"),
    Case("steps-numbers", "stepsnum.jsonl", _jsonl(_traj(steps=[1, 2])), "'steps'"),
    Case("steps-null", "stepsnull.jsonl", _jsonl(_traj(steps=None)), "'steps'"),
    Case("reward-string", "rewardstr.jsonl", _jsonl(_traj(reward="1")), "'reward'"),
    Case("reward-bool", "rewardbool.jsonl", _jsonl(_traj(reward=True)), "'reward'"),
    Case("reward-nan", "rewardnan.jsonl", _jsonl(json.dumps(_traj()).replace('"reward": 1.0', '"reward": NaN')), "'reward'"),
    Case("reward-infinity", "rewardinf.jsonl", _jsonl(json.dumps(_traj()).replace('"reward": 1.0', '"reward": Infinity')), "'reward'"),
    Case("reward-null", "rewardnull.jsonl", _jsonl(_traj(reward=None)), "'reward'"),
    Case("labels-string", "labelsstr.jsonl", _jsonl(_traj(step_labels="++")), "'step_labels'"),
    Case("labels-longer-than-steps", "labelslong.jsonl", _jsonl(_traj(step_labels=[1.0, 1.0, 0.0])), "'step_labels'"),
    Case("labels-shorter-than-steps", "labelsshort.jsonl", _jsonl(_traj(step_labels=[1.0])), "'step_labels'"),
    Case("labels-out-of-range", "labelsrange.jsonl", _jsonl(_traj(step_labels=[2.0, 1.0])), "'step_labels'"),
    Case("labels-nan", "labelsnan.jsonl", _jsonl(json.dumps(_traj()).replace("[1.0, 1.0]", "[NaN, 1.0]")), "'step_labels'"),
    Case("labels-strings", "labelschars.jsonl", _jsonl(_traj(step_labels=["+", "-"])), "'step_labels'"),
    Case("meta-list", "metalist.jsonl", _jsonl(_traj(meta=[1])), "'meta'"),
    Case("pred-answer-number", "prednum.jsonl", _jsonl(_traj(pred_answer=3)), "'pred_answer'"),
    Case("empty-id", "emptyid.jsonl", _jsonl(_traj(id="")), "'id'"),
    Case("empty-problem-id", "emptypid.jsonl", _jsonl(_traj(problem_id="")), "'problem_id'"),
    Case("empty-prompt", "emptyprompt.jsonl", _jsonl(_traj(prompt="")), "'prompt'"),
    Case("blank-prompt", "blankprompt.jsonl", _jsonl(_traj(prompt="  \n")), "'prompt'"),
    Case("empty-steps-list", "nosteps.jsonl", _jsonl(_traj(steps=[], step_labels=[])), "'steps'"),
    Case("empty-sample-only", "emptysample.jsonl", _jsonl(_traj(response="", steps=[], step_labels=[], reward=0.0)),
         commands=("train-prm", "train-rl-offline", "eval-prm")),
    Case("steps-objects", "stepsobj.jsonl", _jsonl(_traj(steps=[{"text": "1+2=3"}, "Answer: 3"])), "'steps'"),
    Case("empty-step", "emptystep.jsonl", _jsonl(_traj(steps=["1+2=3", ""])), "'steps'"),
    Case("steps-not-in-response", "mismatch.jsonl",
         _jsonl(_traj(steps=["2+2=4", "Answer: 4"])), "'steps'"),
    Case("steps-out-of-order", "order.jsonl", _jsonl(_traj(steps=["Answer: 3", "1+2=3"])), "'steps'"),
    Case("null-labels-for-prm", "nulllabels.jsonl", _jsonl(_traj(step_labels=None)), commands=("train-prm", "eval-prm")),
    Case("partial-null-labels-for-prm", "somenull.jsonl", _jsonl(_traj(step_labels=[None, None])),
         commands=("train-prm", "eval-prm")),
    Case("reward-not-binary-offline", "half.jsonl", _jsonl(_traj(reward=0.5)), "'reward'", commands=("train-rl-offline",)),
    Case("no-correct-for-sft", "allwrong.jsonl", _jsonl(_traj(reward=0.0)), commands=("train-sft",)),
    Case("trl-empty-completions", "trlempty.jsonl", _jsonl({**TRL, "completions": [], "labels": []}), "'completions'",
         commands=("train-prm", "eval-prm")),
    Case("trl-null-labels", "trlnull.jsonl", _jsonl({**TRL, "labels": None}), "'labels'", commands=("train-prm", "eval-prm")),
    Case("trl-null-label-item", "trlnullitem.jsonl", _jsonl({**TRL, "labels": [True, None]}), "'labels'",
         commands=("train-prm", "eval-prm")),
    Case("trl-labels-longer", "trllong.jsonl", _jsonl({**TRL, "labels": [True, True, False]}), "'labels'",
         commands=("train-prm", "eval-prm")),
    Case("2mb-prompt", "big.jsonl", _jsonl(_traj(prompt=BIG + "\n")), ":1: field 'prompt'"),
    Case("2mb-prompt-second-line", "big2.jsonl", _jsonl(GOOD_TRAJ, _traj(id="p1/1", prompt=BIG + "\n")), ":2:"),
    Case("utf16-with-bom", "utf16.jsonl", json.dumps(GOOD_TRAJ).encode("utf-16"), ":1:"),
    Case("binary", "binary.jsonl", bytes(range(256)) * 8),
    Case("lone-surrogate", "surrogate.jsonl", _jsonl(json.dumps(_traj()).replace("Answer: 3\"", "Answer: 3 \\udfff\"", 1)),
         "'response'"),
    Case("deep-nesting", "deep.jsonl", b"[" * 100_000 + b"\n", ":1:"),
    Case("directory-empty", "emptydir", _directory({})),
    Case("directory-with-bad-file", "baddir", _directory({"a.jsonl": _jsonl(_traj(reward="x"))}), "a.jsonl"),
    Case("parquet-wrong-columns", "wrong.parquet", _parquet([{"question": "1+2", "answer": "3"}])),
    Case("parquet-garbage", "garbage.parquet", b"PAR1 not really"),
    Case("json-object", "object.json", json.dumps(GOOD_TRAJ).encode()),
    Case("csv", "data.csv", b"id,prompt\n1,x\n"),
    Case("missing-file", "nope.jsonl", None),
]


def _problem_args(command: str, path: Path, run_dir: Path) -> list[str]:
    common = TINY + [f"data={path}", f"run_dir={run_dir}", "generation.max_new_tokens=4"]
    extra = {
        "decode": ["generation.n=2"],   # n > 1 at temperature 0 logs a note: never before an input error
        "collect": ["generation.n=2", "problems_per_chunk=2"],
        "train-rl": ["algo=grpo", "steps=1", "prompts_per_step=2", "generation.n=2", "eval_every=0", "save_every=0"],
    }[command]
    return [command, *common, *extra]


def _trajectory_args(command: str, path: Path, run_dir: Path, prm_dir: Path | None = None) -> list[str]:
    common = TINY + [f"run_dir={run_dir}"]
    if command == "train-prm":
        return ["train-prm", *common, f"train_file={path}", "max_steps=1"]
    if command == "train-rl-offline":
        return ["train-rl", *common, "algo=oreo", f"train_file={path}", "steps=1", "eval_problems=0"]
    if command == "train-sft":
        return ["train-sft", *common, f"train_file={path}", "max_steps=1"]
    return ["eval-prm", *common, f"prm_model={prm_dir}", f"eval_file={path}", "label_source=file"]


def _assert_one_line_error(code: int, stdout: str, stderr: str, path: Path, case: Case, run_dir: Path) -> None:
    lines = stderr.strip().splitlines()
    shown = f"exit {code}; stderr:\n{stderr[-3000:]}"
    assert code == 2, shown
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert "Traceback" not in stderr + stdout, shown
    assert path.name in lines[0], shown
    assert case.where in lines[0], shown
    assert not (run_dir / "summary.json").exists() and not (run_dir / "final").exists()


@pytest.fixture
def no_model(monkeypatch):
    """Bad input must be found before any model is loaded (a tokenizer is fine)."""
    import reasoner.models as M

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    for name in ("load_policy", "load_value_model", "load_reference"):
        monkeypatch.setattr(M, name, refuse)


@pytest.fixture(scope="module")
def prm_dir(tmp_path_factory) -> Path:
    """A tiny model directory for eval-prm's prm_model (read as a PRM; never reached by bad input)."""
    from reasoner import config
    from reasoner.models import load_policy, save_model

    model, tokenizer = load_policy(config.load("train_prm", TINY).model)
    return save_model(model, tokenizer, tmp_path_factory.mktemp("prm") / "final")


@pytest.mark.parametrize("command", ["decode", "collect", "train-rl"])
@pytest.mark.parametrize("case", PROBLEM_CASES, ids=lambda c: c.id)
def test_bad_problem_file_is_one_line_exit_2(tmp_path, cli, no_model, case, command):
    if case.commands is not None and command not in case.commands:
        pytest.skip("not a bad input for this command")
    path = case.write(tmp_path)
    run_dir = tmp_path / "run"
    code, out, err = cli(*_problem_args(command, path, run_dir))
    _assert_one_line_error(code, out, err, path, case, run_dir)


@pytest.mark.parametrize("command", TRAJ_COMMANDS)
@pytest.mark.parametrize("case", TRAJECTORY_CASES, ids=lambda c: c.id)
def test_bad_trajectory_file_is_one_line_exit_2(tmp_path, cli, prm_dir, no_model, case, command):
    if case.commands is not None and command not in case.commands:
        pytest.skip("not a bad input for this command")
    path = case.write(tmp_path)
    run_dir = tmp_path / "run"
    code, out, err = cli(*_trajectory_args(command, path, run_dir, prm_dir))
    _assert_one_line_error(code, out, err, path, case, run_dir)
