"""Run a recipe's commands: each job is one `reasoner` CLI call with its own run_dir.

A job is done once its `done` file exists (every stage writes its summary last), so re-running a
recipe skips finished jobs and re-issues unfinished ones, which then resume from their own
checkpoints or results files: a crash costs at most the work since a stage's last save.
A finished job records its fingerprint (its command and its inputs' fingerprints) in
run_dir/recipe_job.json: when the recipe now runs it otherwise (new overrides, a changed recipe,
a re-run input), the job and everything downstream of it are stale, and the recipe stops
naming them, or with `rerun_changed` moves their run_dirs aside (NAME.replaced-K) and runs them
again, so a page never mixes runs of two configurations.
Independent jobs run side by side, one torch thread each, so two jobs on two cores do not
oversubscribe them (which ran 18x slower here); a job that everything left waits on (the first
SFT of a one-seed run) runs alone with every core.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from reasoner.errors import UserError
from reasoner.utils.io import write_text_atomic
from reasoner.utils.progress import log

RECORD = "recipe_job.json"


@dataclass
class Job:
    """One CLI call. `after` names the jobs whose outputs it reads."""

    name: str
    command: str  # the subcommand, e.g. "train-sft"
    args: list[str]
    run_dir: Path
    after: list[str] = field(default_factory=list)
    done_file: str = "summary.json"

    @property
    def done(self) -> bool:
        return (self.run_dir / self.done_file).is_file()

    def fingerprint(self, inputs: list[str]) -> str:
        """What decides this job's outputs: its command, its arguments, its inputs' fingerprints."""
        text = json.dumps([self.command, self.args, self.run_dir.name, sorted(inputs)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def record_path(self) -> Path:
        return self.run_dir / RECORD

    def recorded(self) -> str | None:
        """The fingerprint the finished job was run with (None: not recorded)."""
        try:
            return json.loads(self.record_path.read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None

    def record(self, fingerprint: str) -> None:
        write_text_atomic(self.record_path, json.dumps({"fingerprint": fingerprint, "command": self.shell()}) + "\n")

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "reasoner.cli", self.command, *self.args, f"run_dir={self.run_dir}"]

    def shell(self) -> str:
        """The command as a user would type it (for the report)."""
        return " ".join(["reasoner", self.command, *map(shlex.quote, self.args), f"run_dir={self.run_dir}"])


def check_graph(jobs: list[Job]) -> None:
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate job names: {sorted(n for n in names if names.count(n) > 1)}")
    known = set(names)
    for j in jobs:
        missing = [a for a in j.after if a not in known]
        if missing:
            raise ValueError(f"job {j.name}: unknown dependencies {missing}")


def fingerprints(jobs: list[Job]) -> dict[str, str]:
    """Each job's fingerprint, its dependencies' folded in (in any listing order; a cycle is an error)."""
    by_name = {j.name: j for j in jobs}
    out: dict[str, str] = {}

    def visit(job: Job, path: tuple[str, ...]) -> str:
        if job.name not in out:
            if job.name in path:
                raise ValueError(f"job {job.name}: dependency cycle {' -> '.join(path + (job.name,))}")
            out[job.name] = job.fingerprint([visit(by_name[a], path + (job.name,)) for a in job.after])
        return out[job.name]

    for j in jobs:
        visit(j, ())
    return out


def stale_jobs(jobs: list[Job], prints: dict[str, str]) -> list[Job]:
    """Finished jobs recorded under another fingerprint (a job finished before records existed
    is adopted: its record is written now)."""
    stale = []
    for j in jobs:
        if not j.done:
            continue
        seen = j.recorded()
        if seen is None:
            j.record(prints[j.name])
        elif seen != prints[j.name]:
            stale.append(j)
    return stale


def _settle_stale(jobs: list[Job], rerun_changed: bool) -> dict[str, str]:
    """The jobs' fingerprints, after stopping on stale jobs or moving them aside to run again."""
    check_graph(jobs)
    prints = fingerprints(jobs)
    stale = stale_jobs(jobs, prints)
    if stale and not rerun_changed:
        names = ", ".join(j.name for j in stale)
        raise UserError(f"recipe: {len(stale)} finished jobs were run with other settings or inputs ({names}); "
                        "re-run with --rerun-changed to move them aside and run them again, or use a new --out")
    for j in stale:
        _move_aside(j)
    return prints


def _move_aside(job: Job) -> None:
    k = 1
    while job.run_dir.with_name(f"{job.run_dir.name}.replaced-{k}").exists():
        k += 1
    shutil.move(job.run_dir, job.run_dir.with_name(f"{job.run_dir.name}.replaced-{k}"))
    if _log_path(job).exists():
        shutil.move(_log_path(job), _log_path(job).with_name(f"{job.run_dir.name}.replaced-{k}.log"))
    log(f"[stale] {job.name}: moved to {job.run_dir.name}.replaced-{k}; running it again")


def run_jobs(jobs: list[Job], parallel: int = 2, threads: int | None = None, on_tick=None,
             rerun_changed: bool = False) -> float:
    """Run every unfinished job, dependencies first, `parallel` at a time; returns the wall time.
    `on_tick()` is called whenever a job starts or ends (the recipe saves its wall clock).

    A failing job stops the recipe (after the running ones end) with one line naming its log;
    so does a stale finished job unless `rerun_changed` (module docstring).
    """
    prints = _settle_stale(jobs, rerun_changed)
    cores = os.cpu_count() or 1
    lone = threads or cores          # a job that runs alone (below)
    threads = threads or max(1, cores // max(1, parallel))
    pending = [j for j in jobs if not j.done]
    by_name = {j.name: j for j in jobs}
    finished = {j.name for j in jobs if j.done}
    for j in jobs:
        if j.done:
            log(f"[skip] {j.name} (done: {j.run_dir / j.done_file})")
    running: dict[str, tuple[Job, subprocess.Popen, float]] = {}
    failed: list[Job] = []
    started = time.time()
    while pending or running:
        for name, (job, proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode == 0 and job.done:
                job.record(prints[name])
                finished.add(name)
                log(f"[done] {name} in {time.time() - t0:.0f} s")
            else:
                failed.append(job)
                log(f"[fail] {name}: exit {proc.returncode}; see {_log_path(job)}")
            if on_tick:
                on_tick()
        if not failed:
            ready = [j for j in pending if all(a in finished for a in j.after)]
            while ready and len(running) < parallel:
                job = ready.pop(0)
                pending.remove(job)
                job.run_dir.parent.mkdir(parents=True, exist_ok=True)
                # a job everything left waits on runs alone: it gets every core (runs are bit-identical
                # across thread counts, so only the wall time changes)
                alone = not running and not ready and all(_needs(p, job.name, by_name) for p in pending)
                with open(_log_path(job), "ab") as out:
                    proc = subprocess.Popen(job.argv(), stdout=out, stderr=subprocess.STDOUT,
                                            env=_env(lone if alone else threads))
                running[job.name] = (job, proc, time.time())
                if on_tick:
                    on_tick()
                log(f"[start] {job.name}: {job.shell()}")
        if failed and not running:
            break
        if not running and pending and not failed:
            raise UserError(f"recipe: jobs {[j.name for j in pending]} wait on jobs that never finish")
        time.sleep(0.5)
    if failed:
        raise UserError(f"recipe: job {failed[0].name} failed (log: {_log_path(failed[0])}); fix it and re-run to continue")
    return time.time() - started


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


def _needs(job: Job, name: str, by_name: dict[str, Job]) -> bool:
    """Whether `job` depends on job `name`, directly or through others."""
    todo, seen = list(job.after), set()
    while todo:
        dep = todo.pop()
        if dep == name:
            return True
        if dep not in seen and dep in by_name:
            seen.add(dep)
            todo += by_name[dep].after
    return False


def _log_path(job: Job) -> Path:
    return job.run_dir.parent / f"{job.run_dir.name}.log"
