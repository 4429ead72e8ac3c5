"""collect: records, index and summary; exact resume after a torn chunk and after SIGKILL; bad
input stops with one line and no output; chat templates and field names for jsonl data; the
labelers wired end to end through a truthful fake generator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from reasoner import config
from reasoner.data import read_trajectories
from reasoner.errors import UserError
from reasoner.generation.base import Completion
from reasoner.stages import collect
from reasoner.tasks import arith, get_task
from tests.conftest import REPO, TINY

BASE = TINY + ["data.num_problems=6", "generation.n=4", "generation.max_new_tokens=24", "problems_per_chunk=2"]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the killed run is a subprocess with one thread, so the float math is the
    same here; and on a shared CPU two threads are many times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load(tmp_path, *extra):
    return config.load("collect", BASE + [f"run_dir={tmp_path}", *extra])


def lines(path):
    return path.read_text().splitlines()


def test_collect_writes_records_index_and_summary(tmp_path):
    cfg = load(tmp_path, "labels=shepherd", "labels.rollouts=2")
    summary = collect.run(cfg)
    records = read_trajectories(tmp_path / "trajectories.jsonl")
    problems = get_task("arith").load_problems(cfg.data)
    assert [t.id for t in records] == [f"{p.id}/{k}" for p in problems for k in range(4)]
    for t in records:
        assert len(t.step_labels) == len(t.steps) == len(t.meta["true_step_labels"])
        assert t.prompt == next(p.prompt for p in problems if p.id == t.problem_id) + "\n"
    index = [json.loads(x) for x in lines(tmp_path / "chunks.jsonl")]
    assert [e["chunk"] for e in index] == [0, 1, 2] and index[-1]["bytes"] == (tmp_path / "trajectories.jsonl").stat().st_size
    assert summary["problems"] == 6 and summary["samples"] == 24 and summary["records"] == 24
    assert summary["rollouts"] == sum(e["rollouts"] for e in index)
    assert summary["label_stats"]["labelled_trajectories"] == 24 and "agreement" in summary["label_stats"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert len(lines(tmp_path / "per_problem.jsonl")) == 6


def test_resume_drops_a_torn_chunk_and_writes_the_same_bytes(tmp_path):
    cfg = load(tmp_path)
    collect.run(cfg)
    traj = tmp_path / "trajectories.jsonl"
    full = traj.read_bytes()
    index = lines(tmp_path / "chunks.jsonl")
    # a crash during the last chunk: its index line never landed, its records half-written
    (tmp_path / "chunks.jsonl").write_text("\n".join(index[:-1]) + "\n")
    committed = json.loads(index[-2])["bytes"]
    traj.write_bytes(full[:committed] + full[committed:committed + 150])
    (tmp_path / "summary.json").write_text("{}")
    collect.run(cfg)
    assert traj.read_bytes() == full
    assert json.loads((tmp_path / "summary.json").read_text())["problems"] == 6


def test_other_settings_in_the_same_run_dir_are_refused(tmp_path):
    collect.run(load(tmp_path))
    with pytest.raises(UserError, match="generation.n=4"):
        collect.run(load(tmp_path, "generation.n=3"))


KILL_RUN = TINY + ["data.num_problems=16", "generation.n=4", "generation.max_new_tokens=32", "problems_per_chunk=1",
                  "labels=shepherd", "labels.rollouts=2"]


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "reasoner", "collect", *KILL_RUN, f"run_dir={killed}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = killed / "chunks.jsonl"
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline:
        if index.exists() and index.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "summary.json").exists()
    assert index.read_bytes().count(b"\n") < 16
    collect.run(config.load("collect", KILL_RUN + [f"run_dir={killed}"]))     # the same command again
    collect.run(config.load("collect", KILL_RUN + [f"run_dir={ref}"]))        # never interrupted
    want = (ref / "trajectories.jsonl").read_bytes()
    got = (killed / "trajectories.jsonl").read_bytes()
    ids = [json.loads(x)["id"] for x in got.decode().splitlines()]
    assert len(ids) == len(set(ids)) == 64
    assert got == want
    assert (killed / "per_problem.jsonl").read_bytes() == (ref / "per_problem.jsonl").read_bytes()


@pytest.mark.parametrize("content,where", [
    (b'{"prompt": "1+1?", "answer": "2"}\n{"prompt": "2+2?"}\n', ":2: field 'answer': missing"),
    (b'{"prompt": "1+1?", "answer": "2"}\n{"prompt": "  ", "answer": "4"}\n', ":2: field 'prompt': is empty"),
    (b'{"prompt": "1+1?", "answer": "2"}\n{"prompt": "caf\xe9", "answer": "4"}\n', ":2: not valid UTF-8"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, cli, content, where):
    data = tmp_path / "bad.jsonl"
    data.write_bytes(content)
    run_dir = tmp_path / "out"
    code, _, err = cli("collect", *TINY, f"data={data}", f"run_dir={run_dir}")
    assert code == 2
    assert err.strip().count("\n") == 0 and f"{data}{where}" in err
    assert not run_dir.exists()


def test_truth_labels_need_a_step_checker(tmp_path, cli):
    data = tmp_path / "ok.jsonl"
    data.write_text('{"prompt": "1+1?", "answer": "2"}\n')
    code, _, err = cli("collect", *TINY, f"data={data}", "labels=truth", f"run_dir={tmp_path / 'out'}")
    assert code == 2 and "labels=truth needs a task with a ground-truth step checker" in err


def test_jsonl_fields_chat_template_and_balanced_selection(tmp_path):
    from reasoner.models import load_policy, save_model

    model, tok = load_policy(load(tmp_path / "x").model)
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    save_model(model, tok, tmp_path / "chat-model")
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} + 1?", "sol": str(i + 1)}) + "\n" for i in range(3)))
    cfg = config.load("collect", TINY + [
        f"model.name_or_path={tmp_path / 'chat-model'}", "model.chat_template=auto", "data=jsonl",
        f"data.path={data}", "data.prompt_field=q", "data.answer_field=sol", "selection=balanced",
        "generation.n=6", "generation.max_new_tokens=16", f"run_dir={tmp_path / 'run'}"])
    summary = collect.run(cfg)
    records = read_trajectories(tmp_path / "run" / "trajectories.jsonl")
    assert records[0].prompt.startswith("<system>") and "<user>What is 0 + 1?\n<assistant>" in records[0].prompt
    assert "true_step_labels" not in records[0].meta
    for row in map(json.loads, lines(tmp_path / "run" / "per_problem.jsonl")):
        neg = min(row["samples"] - row["correct"], 4)
        assert row["kept"] == neg + min(row["correct"], 4, max(neg, 1))
    assert summary["kept"] == len(records)


def slipped(rest: list[str]) -> str:
    """The remaining gold steps with the last operation off by one (or a wrong bare answer)."""
    ops = rest[:-1]
    if not ops:
        return "Answer: 999"
    head, _, value = ops[-1].rpartition("= ")
    wrong = int(value) + 1
    return "\n".join(ops[:-1] + [f"{head}= {wrong}", f"Answer: {wrong}"])


class TruthfulGym:
    """A fake Generator for the gym: from a prompt whose written steps are all right, the first
    half of the n samples finish with the gold steps and the rest slip in the last operation;
    from a wrong prefix every sample answers 999."""

    def generate(self, prompts, params):
        out = []
        for text in prompts:
            question, _, written = text.partition("\n")
            steps = [s for s in written.split("\n") if s]
            problem = arith.Problem("p", question, "", "arith")
            start, ops = arith.parse_prompt(question)
            gold = arith.gold_steps(start, ops)
            good = all(arith.check_steps(problem, steps))
            comps = []
            for i in range(params.n):
                if not good:
                    body = "Answer: 999"
                else:
                    body = "\n".join(gold[len(steps):]) if i < params.n // 2 else slipped(gold[len(steps):])
                comps.append(Completion(body, list(range(len(body) + 1)), [0.0] * (len(body) + 1), "stop"))
            out.append(comps)
        return out


@pytest.mark.parametrize("labels", ["shepherd", "omegaprm", "truth"])
def test_labelers_end_to_end_with_a_truthful_generator(tmp_path, monkeypatch, labels):
    import reasoner.generation.factory as factory

    monkeypatch.setattr(factory, "build_generator", lambda *a, **k: TruthfulGym())
    cfg = load(tmp_path, f"labels={labels}", "labels.rollouts=4", "labels.budget=16")
    summary = collect.run(cfg)
    assert summary["accuracy"] == 0.5
    stats = summary["label_stats"]
    assert stats["agreement"]["all_labelled_steps"] == 1.0
    records = read_trajectories(tmp_path / "trajectories.jsonl")
    if labels == "omegaprm":
        per_problem = [json.loads(x) for x in lines(tmp_path / "per_problem.jsonl")]
        assert all(p["rollouts"] <= 16 for p in per_problem) and summary["rollouts"] > 0
        problems = {p.id: p for p in get_task("arith").load_problems(cfg.data)}
        located = [t for t in records if t.meta.get("first_error") is not None]
        assert located and all(t.meta["first_error"] == arith.first_error(problems[t.problem_id], t.steps)
                               for t in located)
    if labels == "shepherd":
        assert all(v is not None for t in records for v in t.step_labels)


def test_a_foreign_trajectories_file_is_never_truncated(tmp_path):
    (tmp_path / "trajectories.jsonl").write_text('{"mine": 1}\n')
    with pytest.raises(UserError, match="not written by `reasoner collect`"):
        collect.run(load(tmp_path))
    assert (tmp_path / "trajectories.jsonl").read_text() == '{"mine": 1}\n'
