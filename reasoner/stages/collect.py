"""`reasoner collect`: sample n solutions per problem, grade, select, label steps; resumable.

Problems are processed in fixed chunks of `problems_per_chunk` (chunk j = problems[j*c:(j+1)*c]).
A chunk is sampled with one generate() call, split into steps, graded, selected, labelled, and
its records are appended to run_dir/trajectories.jsonl in one write + fsync; then one line is
appended to run_dir/chunks.jsonl with the chunk's problems, its statistics and the byte size of
trajectories.jsonl after the append. That index is the commit point: a restart truncates
trajectories.jsonl to the last recorded size (dropping a chunk cut off by a crash) and goes on
with the next chunk. Every chunk draws its randomness from seeds that are a pure function of
(seed, generation.seed, the chunk's first problem id), so a resumed run writes exactly the
bytes an uninterrupted one would. summary.json and per_problem.jsonl are written only at the
very end. A run dir made with other settings is refused rather than mixed.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from reasoner.errors import UserError
from reasoner.utils.progress import log, progress

TRAJECTORIES = "trajectories.jsonl"
INDEX = "chunks.jsonl"
SUMMARY = "summary.json"
PER_PROBLEM = "per_problem.jsonl"


# --------------------------------------------------------------------------- validation

def validate(cfg, task) -> str:
    """Check the knobs a stage run depends on; returns the step separator in force."""
    from reasoner.labeling import LABELERS
    from reasoner.labeling.selection import SELECTIONS

    g, lab = cfg.generation, cfg.labels
    if lab.name not in LABELERS:
        raise UserError(f"config: labels '{lab.name}' is unknown (choose from {', '.join(LABELERS)})")
    if cfg.selection.name not in SELECTIONS:
        raise UserError(f"config: selection '{cfg.selection.name}' is unknown (choose from {', '.join(SELECTIONS)})")
    checks = [
        (g.n >= 1, f"generation.n must be >= 1 (got {g.n})"),
        (g.temperature >= 0, f"generation.temperature must be >= 0 (got {g.temperature})"),
        (0 < g.top_p <= 1, f"generation.top_p must be in (0, 1] (got {g.top_p})"),
        (g.max_new_tokens >= 1, f"generation.max_new_tokens must be >= 1 (got {g.max_new_tokens})"),
        (cfg.problems_per_chunk >= 1, f"problems_per_chunk must be >= 1 (got {cfg.problems_per_chunk})"),
        (cfg.answer_timeout > 0, f"answer_timeout must be > 0 (got {cfg.answer_timeout})"),
        (cfg.selection.max_positive >= 0 and cfg.selection.max_negative >= 0,
         "selection.max_positive and selection.max_negative must be >= 0"),
    ]
    if lab.name in ("shepherd", "omegaprm"):
        checks += [
            (lab.rollouts >= 1, f"labels.rollouts must be >= 1 (got {lab.rollouts})"),
            (lab.temperature > 0, f"labels.temperature must be > 0 for Monte-Carlo rollouts (got {lab.temperature})"),
            (lab.max_new_tokens is None or lab.max_new_tokens >= 1,
             f"labels.max_new_tokens must be >= 1 or null (got {lab.max_new_tokens})"),
        ]
    if lab.name == "omegaprm":
        checks += [
            (lab.budget >= 0, f"labels.budget must be >= 0 (got {lab.budget})"),
            (0 < lab.alpha <= 1, f"labels.alpha must be in (0, 1] (got {lab.alpha})"),
            (0 < lab.beta <= 1, f"labels.beta must be in (0, 1] (got {lab.beta})"),
            (lab.length_scale > 0, f"labels.length_scale must be > 0 (got {lab.length_scale})"),
            (lab.c_puct >= 0, f"labels.c_puct must be >= 0 (got {lab.c_puct})"),
        ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"config: {message}")
    if lab.name == "truth" and task.step_checker is None:
        raise UserError(f"config: labels=truth needs a task with a ground-truth step checker (data=arith); "
                        f"data '{task.name}' has none")
    sep = task.step_separator if cfg.step_separator is None else cfg.step_separator
    if sep == "":
        raise UserError("config: step_separator must not be empty (use null for the task's own)")
    return sep


def _check_unique(problems) -> None:
    seen = set()
    for p in problems:
        if p.id in seen:
            raise UserError(f"data: two problems share the id '{p.id}'; collection resumes by id, so ids must be unique")
        seen.add(p.id)


# --------------------------------------------------------------------------- resume

def check_same_config(run_dir: Path, cfg) -> None:
    """Refuse to append to a collection made with different settings (its records would mix)."""
    import yaml

    from reasoner.config import to_yaml
    from reasoner.utils.settings import first_difference

    old_path, index = run_dir / "config.yaml", run_dir / INDEX
    if not index.exists() or index.stat().st_size == 0 or not old_path.exists():
        return
    try:
        old = yaml.safe_load(old_path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        old = None
    if not isinstance(old, dict):
        raise UserError(f"{old_path}: unreadable; cannot check that resuming is safe (use a new run_dir)")
    changed = first_difference(old, yaml.safe_load(to_yaml(cfg)))
    if changed:
        key, was, now = changed
        raise UserError(f"run_dir {run_dir} holds a collection made with {key}={was!r} "
                        f"(now {now!r}); rerun with the same settings to resume, or use a new run_dir")


def load_index(run_dir: Path) -> list[dict]:
    """Finished chunks recorded in chunks.jsonl (a line torn by a crash is ignored)."""
    from reasoner.errors import DataError
    from reasoner.utils.io import read_jsonl_tolerant

    path = run_dir / INDEX
    if not path.exists():
        return []
    entries, _ = read_jsonl_tolerant(path)
    for i, e in enumerate(entries):
        if not (isinstance(e, dict) and e.get("chunk") == i and isinstance(e.get("bytes"), int)
                and isinstance(e.get("problems"), list)):
            raise DataError(str(path), i + 1, None, "not a chunk record of this collection (use a new run_dir)")
    return entries


def restore(run_dir: Path, entries: list[dict]) -> None:
    """Cut trajectories.jsonl back to the last committed chunk (drops a partial append).

    The index file is created before the first append, so a trajectories.jsonl without one was
    not written by collect and is never touched.
    """
    path, index = run_dir / TRAJECTORIES, run_dir / INDEX
    size = entries[-1]["bytes"] if entries else 0
    actual = path.stat().st_size if path.exists() else 0
    if not index.exists():
        if actual:
            raise UserError(f"{path} exists but was not written by `reasoner collect` (no {INDEX} beside it); "
                            "use a new run_dir")
        with open(index, "ab") as fh:
            os.fsync(fh.fileno())
    if actual < size:
        raise UserError(f"{path}: {actual} bytes, but {run_dir / INDEX} records {size}; the file was changed "
                        "outside collect (use a new run_dir)")
    if actual > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            fh.flush()
            os.fsync(fh.fileno())


def _lock(run_dir: Path):
    """An exclusive lock on the run dir for the life of the process (freed even by SIGKILL)."""
    fh = open(run_dir / ".collect.lock", "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise UserError(f"run_dir {run_dir}: another `reasoner collect` is writing to it") from None
    return fh


# --------------------------------------------------------------------------- one chunk

class Collector:
    """Turns a chunk of problems into labelled Trajectory records (no I/O)."""

    def __init__(self, cfg, task, sep: str, generator, tokenizer):
        from reasoner.generation.base import SamplingParams

        self.cfg, self.task, self.sep = cfg, task, sep
        self.generator, self.tokenizer = generator, tokenizer
        g, lab = cfg.generation, cfg.labels
        self.sample_params = SamplingParams(n=g.n, temperature=g.temperature, top_p=g.top_p,
                                            max_new_tokens=g.max_new_tokens, stop=list(g.stop))
        self.label_params = replace(self.sample_params, temperature=lab.temperature,
                                    max_new_tokens=lab.max_new_tokens or g.max_new_tokens)

    def prompt(self, problem) -> str:
        from reasoner.prompts import build_prompt

        m = self.cfg.model
        return build_prompt(problem.prompt, self.tokenizer, m.chat_template, m.system_prompt, self.cfg.data.name)

    def sample(self, problem, prompt: str, k: int, completion):
        from reasoner.data import Trajectory, split_steps

        pred, ok = self.task.grade(completion.text, problem, self.cfg.answer_timeout)
        g = self.cfg.generation
        return Trajectory(
            id=f"{problem.id}/{k}", problem_id=problem.id, prompt=prompt, response=completion.text,
            steps=split_steps(completion.text, self.sep), pred_answer=pred, reward=1.0 if ok else 0.0,
            meta={"sample_index": k, "model": self.cfg.model.name_or_path, "temperature": g.temperature,
                  "top_p": g.top_p, "finish_reason": completion.finish_reason,
                  "num_tokens": len(completion.token_ids), "labels": self.cfg.labels.name})

    def chunk(self, problems, on_round=None):
        """(records, per-problem stats, sample tokens, label tokens) of one chunk."""
        from reasoner.labeling.apply import ProblemGroup, apply_labels
        from reasoner.labeling.rollout import GeneratorRollouts, derive_seed
        from reasoner.labeling.selection import select

        cfg = self.cfg
        seed = derive_seed(cfg.seed, cfg.generation.seed, problems[0].id)
        prompts = [self.prompt(p) for p in problems]
        outputs = self.generator.generate(prompts, replace(self.sample_params, seed=derive_seed(seed, "samples")))
        groups, sample_tokens = [], 0
        for p, prompt, completions in zip(problems, prompts, outputs):
            samples = [self.sample(p, prompt, k, c) for k, c in enumerate(completions)]
            sample_tokens += sum(t.meta["num_tokens"] for t in samples)
            kept = select(samples, [t.reward for t in samples], cfg.selection.name,
                          cfg.selection.max_positive, cfg.selection.max_negative)
            groups.append(ProblemGroup(p, prompt, samples, kept))
        rollouts = GeneratorRollouts(self.generator, self.task, self.sep, self.label_params,
                                     derive_seed(seed, "labels"), cfg.answer_timeout)
        apply_labels(cfg.labels.name, groups, cfg.labels, rollouts, self.task, self.sep, on_round)
        records, stats = [], []
        for g in groups:
            out = g.kept + g.extra
            if self.task.step_checker is not None:
                for t in out:
                    t.meta["true_step_labels"] = self.task.check_steps(g.problem, t.steps)
            records += out
            stats.append({"id": g.problem.id, "samples": len(g.samples),
                          "correct": sum(t.reward >= 0.5 for t in g.samples), "kept": len(g.kept),
                          "records": len(out), "rollouts": g.rollouts})
        return records, stats, sample_tokens, rollouts.tokens


# --------------------------------------------------------------------------- summary

def summarize(run_dir: Path, entries: list[dict], cfg) -> tuple[dict, list[dict]]:
    """(summary, per-problem rows): figures from the index (all resumes together) and the records."""
    from reasoner.data import read_trajectories
    from reasoner.labeling.stats import label_stats

    per_problem = [p for e in entries for p in e["problems"]]
    samples = sum(p["samples"] for p in per_problem)
    correct = sum(p["correct"] for p in per_problem)
    path = run_dir / TRAJECTORIES
    records = read_trajectories(path) if path.exists() and path.stat().st_size else []
    rollouts = sum(e["rollouts"] for e in entries)
    tokens = sum(e["sample_tokens"] + e["label_tokens"] for e in entries)
    wall = sum(e["wall_s"] for e in entries)
    summary = {
        "problems": len(per_problem),
        "samples": samples,
        "accuracy": round(correct / samples, 4) if samples else 0.0,
        "solved_problems": sum(p["correct"] > 0 for p in per_problem),
        "kept": sum(p["kept"] for p in per_problem),
        "records": len(records),
        "records_correct": sum(t.reward >= 0.5 for t in records),
        "labels": cfg.labels.name,
        "selection": cfg.selection.name,
        "rollouts": rollouts,
        "sample_tokens": sum(e["sample_tokens"] for e in entries),
        "label_tokens": sum(e["label_tokens"] for e in entries),
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 1) if wall > 0 else None,
        "samples_per_s": round(samples / wall, 2) if wall > 0 else None,
        "label_stats": label_stats(records, rollouts=rollouts) if cfg.labels.name != "none" else None,
        "model": cfg.model.name_or_path, "data": cfg.data.name, "n": cfg.generation.n,
        "temperature": cfg.generation.temperature, "chunks": len(entries),
    }
    return summary, [{**p, "accuracy": round(p["correct"] / p["samples"], 4) if p["samples"] else 0.0}
                     for p in per_problem]


# --------------------------------------------------------------------------- stage

def run(cfg) -> dict:
    from reasoner.generation.factory import build_generator
    from reasoner.models import load_policy, load_tokenizer
    from reasoner.prompts import bound_problems
    from reasoner.tasks import get_task
    from reasoner.utils.io import append_jsonl, write_json_atomic, write_jsonl_atomic
    from reasoner.utils.run import prepare_run_dir

    task = get_task(cfg.data.name).derive(fallback_last_number=cfg.data.answer_fallback)
    sep = validate(cfg, task)
    problems = task.load_problems(cfg.data)          # bad input fails here, before any output
    if not problems:
        raise UserError(f"data '{cfg.data.name}': no problems to collect")
    _check_unique(problems)
    problems = bound_problems(problems, load_tokenizer(cfg.model), cfg.model, cfg.data)  # before the model loads
    if cfg.generation.n > 1 and cfg.generation.temperature == 0:  # after the data checks: an error stays one line
        log("note: generation.n > 1 with temperature 0 gives n identical greedy samples")
    run_dir = Path(cfg.run_dir)
    check_same_config(run_dir, cfg)
    model, tokenizer = load_policy(cfg.model)
    problems = bound_problems(problems, tokenizer, cfg.model, cfg.data, cfg.generation.max_new_tokens, model)
    generator = build_generator(cfg.generation, model, tokenizer)
    run_dir = prepare_run_dir(cfg, "collect")
    lock = _lock(run_dir)
    try:
        entries = load_index(run_dir)
        size = cfg.problems_per_chunk
        chunks = [problems[i:i + size] for i in range(0, len(problems), size)]
        for e, chunk in zip(entries, chunks):
            if [p["id"] for p in e["problems"]] != [p.id for p in chunk]:
                raise UserError(f"{run_dir / INDEX}: chunk {e['chunk']} holds other problems than the data now "
                                "gives (the data changed?); use a new run_dir")
        if len(entries) > len(chunks):
            raise UserError(f"{run_dir / INDEX}: records more chunks than the data has; use a new run_dir")
        restore(run_dir, entries)
        if len(entries) < len(chunks):
            (run_dir / SUMMARY).unlink(missing_ok=True)
            (run_dir / PER_PROBLEM).unlink(missing_ok=True)
        if entries:
            log(f"resuming: {len(entries)} of {len(chunks)} chunks already collected in {run_dir}")
        collector = Collector(cfg, task, sep, generator, tokenizer)
        _collect(collector, chunks, entries, run_dir, append_jsonl)
        summary, per_problem = summarize(run_dir, entries, cfg)
        write_jsonl_atomic(run_dir / PER_PROBLEM, per_problem)
        write_json_atomic(run_dir / SUMMARY, summary)
    finally:
        lock.close()
    print_summary(summary)
    return summary


def _collect(collector: Collector, chunks, entries: list[dict], run_dir: Path, append_jsonl) -> None:
    """The chunk loop: work, append records, commit the index line; progress on stderr."""
    traj_path, index_path = run_dir / TRAJECTORIES, run_dir / INDEX
    started, tokens = time.time(), 0
    samples = sum(p["samples"] for e in entries for p in e["problems"])
    correct = sum(p["correct"] for e in entries for p in e["problems"])
    rollouts = sum(e["rollouts"] for e in entries)
    with progress() as bar:
        task_id = bar.add_task("collect", total=sum(len(c) for c in chunks),
                               completed=sum(len(e["problems"]) for e in entries), info="")

        def info(extra: str = "") -> str:
            rate = tokens / max(time.time() - started, 1e-9)
            acc = correct / samples if samples else 0.0
            return f"{samples} samples  acc {acc:.3f}  {rollouts} rollouts  {rate:.0f} tok/s{extra}"

        for j in range(len(entries), len(chunks)):
            t0 = time.time()
            on_round = lambda r, n: bar.update(task_id, info=info(f"  [labels round {r}: {n} prefixes]"))  # noqa: E731
            records, stats, s_tok, l_tok = collector.chunk(chunks[j], on_round)
            append_jsonl(traj_path, records)
            size = traj_path.stat().st_size if traj_path.exists() else 0
            entry = {"chunk": j, "bytes": size, "records": len(records), "problems": stats,
                     "rollouts": sum(s["rollouts"] for s in stats), "sample_tokens": s_tok, "label_tokens": l_tok,
                     "wall_s": round(time.time() - t0, 3)}
            append_jsonl(index_path, [entry])
            entries.append(entry)
            tokens += s_tok + l_tok
            samples += sum(s["samples"] for s in stats)
            correct += sum(s["correct"] for s in stats)
            rollouts += entry["rollouts"]
            bar.update(task_id, advance=len(chunks[j]), info=info())


def print_summary(summary: dict) -> None:
    """The headline numbers on stdout, one `key: value` per line."""
    for key in ("problems", "samples", "accuracy", "records", "rollouts", "sample_tokens", "label_tokens",
                "wall_s", "tokens_per_s"):
        print(f"{key}: {summary.get(key)}")
    stats = summary.get("label_stats") or {}
    if stats:
        print(f"label_stats: {json.dumps(stats, sort_keys=True)}")
