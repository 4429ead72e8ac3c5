"""`reasoner recipe gym --toy`: every stage of the results pipeline runs end to end, resumes, and
the results page shows a row or section for each (the numbers of a toy run mean nothing)."""

from __future__ import annotations

import json

import pytest

from reasoner.recipes import gym
from reasoner.recipes.jobs import Job, check_graph, fingerprints, run_jobs


def test_every_stage_is_in_the_graph_and_its_dependencies_exist(tmp_path):
    jobs = gym.build(tmp_path, gym.SIZES["full"])
    check_graph(jobs)
    names = {j.name for j in jobs}
    assert {"sft-s0", "sft-s1", "sft-s2", "search-sweep", "collect-offline", "oreo-value-beam", "off-oreo-iterative"} <= names
    assert {f"rl-{a}-s{s}" for a in gym.ONLINE for s in (0, 1, 2)} <= names
    assert {f"off-{a}-s{s}" for a in gym.OFFLINE for s in (0, 1, 2)} <= names
    assert {f"prm-{p}" for p in (*gym.LABELS, "implicit")} <= names


@pytest.mark.parametrize("size", sorted(gym.SIZES))
def test_every_size_fingerprints_its_jobs_whatever_their_listing_order(tmp_path, size):
    # the full and quick graphs list RLEP's pool before the GRPO run it reads: fingerprints once
    # assumed dependency order and crashed both before any job ran
    jobs = gym.build(tmp_path, gym.SIZES[size])
    prints = fingerprints(jobs)
    assert set(prints) == {j.name for j in jobs}
    assert prints == fingerprints(list(reversed(jobs)))


def test_a_dependency_cycle_is_named(tmp_path):
    jobs = [Job("a", "decode", [], tmp_path / "a", ["b"]), Job("b", "decode", [], tmp_path / "b", ["a"])]
    with pytest.raises(ValueError, match="cycle a -> b -> a"):
        fingerprints(jobs)


def test_a_failing_job_stops_the_recipe_with_one_line(tmp_path):
    from reasoner.errors import UserError

    bad = Job("bad", "decode", ["no_such_key=1"], tmp_path / "bad")
    after = Job("after", "decode", [], tmp_path / "after", after=["bad"])
    with pytest.raises(UserError, match="job bad failed"):
        run_jobs([bad, after], parallel=1)
    assert not (tmp_path / "after").exists()
    assert "unknown key" in (tmp_path / "bad.log").read_text()


@pytest.mark.timeout(1800)
def test_toy_recipe_runs_every_stage_and_writes_the_page(tmp_path):
    from reasoner.recipes import run_recipe

    page = run_recipe("gym", "toy", out=str(tmp_path / "runs"), parallel=2, report=str(tmp_path / "gym.md"))
    jobs = gym.build((tmp_path / "runs").resolve(), gym.SIZES["toy"])
    assert all(j.done for j in jobs), [j.name for j in jobs if not j.done]
    text = page.read_text()
    for row in ("SFT, greedy", "GRPO", "PPO", "PRIME", "RLEP", "OREO", "RFT", "DPO", "value-guided beam",
                "## Process reward models", "## Search: accuracy vs budget", "## The papers' claims"):
        assert row in text, row
    assert (tmp_path / "gym_figures" / "gym_search.png").is_file()
    # a second call runs nothing and rebuilds the same page
    before = {j.name: (j.run_dir / j.done_file).stat().st_mtime for j in jobs}
    run_recipe("gym", "toy", out=str(tmp_path / "runs"), parallel=2, report=str(tmp_path / "gym.md"))
    assert before == {j.name: (j.run_dir / j.done_file).stat().st_mtime for j in jobs}
    summary = json.loads((tmp_path / "runs" / "sft-s0" / "summary.json").read_text())
    assert summary["steps"] == gym.SIZES["toy"].sft_steps


def test_a_job_everything_waits_on_gets_every_core_and_side_by_side_jobs_one_each(tmp_path, monkeypatch):
    import os
    import subprocess

    from reasoner.recipes import jobs as J

    seen = {}

    class Done:
        def __init__(self, argv, env, **_):
            run_dir = argv[-1].split("=", 1)[1]
            seen[os.path.basename(run_dir)] = env["OMP_NUM_THREADS"]
            os.makedirs(run_dir, exist_ok=True)
            open(os.path.join(run_dir, "summary.json"), "w").close()
            self.returncode = 0

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Done)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    first = Job("sft", "train-sft", [], tmp_path / "sft")
    a = Job("a", "decode", [], tmp_path / "a", after=["sft"])
    b = Job("b", "decode", [], tmp_path / "b", after=["sft"])
    last = Job("last", "decode", [], tmp_path / "last", after=["a", "b"])
    ticks = []
    J.run_jobs([first, a, b, last], parallel=2, on_tick=lambda: ticks.append(1))
    assert seen == {"sft": "2", "a": "1", "b": "1", "last": "2"}
    assert len(ticks) == 8   # each job's start and end


def test_the_wall_clock_adds_to_earlier_invocations_and_is_saved_as_it_goes(tmp_path):
    from reasoner.recipes import _WallClock

    path = tmp_path / "recipe_wall_s.txt"
    path.write_text("100.0\n")          # an earlier, killed invocation
    clock = _WallClock(path)
    first = clock.save()
    assert 100.0 <= first < 101.0 and float(path.read_text()) == pytest.approx(first, abs=0.1)
    assert clock.save() >= first and not path.with_suffix(".tmp").exists()


class _FakeRun:
    """A Popen that 'runs' a job by writing its summary; records which jobs ran."""

    ran: list[str] = []

    def __init__(self, argv, env, **_):
        import os

        run_dir = argv[-1].split("=", 1)[1]
        _FakeRun.ran.append(os.path.basename(run_dir))
        os.makedirs(run_dir, exist_ok=True)
        open(os.path.join(run_dir, "summary.json"), "w").close()
        self.returncode = 0

    def poll(self):
        return 0


def test_a_changed_job_and_everything_downstream_are_stale_and_rerun_only_when_asked(tmp_path, monkeypatch):
    import subprocess

    from reasoner.errors import UserError

    monkeypatch.setattr(subprocess, "Popen", _FakeRun)

    def graph(sft_args):
        return [Job("sft", "train-sft", sft_args, tmp_path / "sft"),
                Job("rl", "train-rl", ["algo=grpo"], tmp_path / "rl", after=["sft"]),
                Job("other", "decode", [], tmp_path / "other")]

    _FakeRun.ran = []
    run_jobs(graph(["seed=0"]), parallel=1)
    assert sorted(_FakeRun.ran) == ["other", "rl", "sft"]
    _FakeRun.ran = []
    run_jobs(graph(["seed=0"]), parallel=1)          # the same recipe: nothing runs
    assert _FakeRun.ran == []
    with pytest.raises(UserError, match=r"2 finished jobs were run with other settings or inputs \(sft, rl\); "
                                        r"re-run with --rerun-changed"):
        run_jobs(graph(["seed=1"]), parallel=1)
    assert _FakeRun.ran == [] and (tmp_path / "sft" / "summary.json").is_file()
    run_jobs(graph(["seed=1"]), parallel=1, rerun_changed=True)
    assert _FakeRun.ran == ["sft", "rl"]             # "other" does not depend on sft
    assert (tmp_path / "sft.replaced-1" / "summary.json").is_file() and (tmp_path / "rl.replaced-1").is_dir()


def test_a_job_finished_before_fingerprints_existed_is_adopted(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, "Popen", _FakeRun)
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "summary.json").write_text("{}")
    _FakeRun.ran = []
    run_jobs([Job("sft", "train-sft", [], tmp_path / "sft")], parallel=1)
    assert _FakeRun.ran == [] and (tmp_path / "sft" / "recipe_job.json").is_file()
