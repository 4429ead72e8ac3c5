"""`data=reasoning_gym`: problems from the reasoning-gym procedural generators, scored by their own
`score_answer`.

reasoning-gym (optional extra `reasoner[reasoning-gym]`, imported here only, lazily) offers ~100
seeded generators (arithmetic, algebra, logic, games, ...). `data.task` names one, or a list mixed
by `data.weights` through the package's composite dataset; `data.task_config` holds the task's own
settings (for a list: `{name: {...}}`), checked against the task's config class when the config
loads. Each Problem keeps its reasoning-gym entry in `meta["entry"]`, so `score(pred, problem)`
hands `score_answer` exactly what the generator produced (games like sudoku check an answer
against the puzzle, not against one gold string).

Splits: a question belongs to `test`, `validation` or `train` by a hash of its text (1/10, 1/10,
8/10 of the question space), and each split draws from its own seeds, so no question text is in
two splits, whatever the seeds and sizes. Within a split questions are distinct while the task
allows; a space too small for data.num_problems is cycled (meta["repeat_of"]), as in the gym.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import fields, is_dataclass
from typing import Any

from reasoner.data import Problem
from reasoner.errors import UserError

__all__ = ["SPLITS", "INSTALL_HINT", "task_names", "split_of", "check_config", "load_problems", "score"]

SPLITS = ("train", "validation", "test")
BUCKETS = 10                          # question-hash buckets: 0 -> test, 1 -> validation, else train
CHUNK = 500                           # entries per generator instance (reasoning-gym's own default size)
INSTALL_HINT = "pip install 'reasoner[reasoning-gym]'"
RESERVED = {"seed": "data.seed", "size": "data.num_problems"}   # task config keys reasoner sets itself


def _rg():
    """The reasoning_gym package, or one line saying how to install it."""
    try:
        import reasoning_gym
    except ImportError:
        raise UserError(f"data=reasoning_gym needs the reasoning-gym package: {INSTALL_HINT}") from None
    return reasoning_gym


def task_names() -> list[str]:
    """The generators reasoning-gym offers (its composite mixer excluded: use a list in data.task)."""
    from_factory = _rg().factory.DATASETS
    return sorted(name for name in from_factory if name != "composite")


def split_of(question: str) -> str:
    """The split a question belongs to: a fixed hash bucket, so it depends on the text alone."""
    bucket = int(hashlib.sha256(question.encode("utf-8")).hexdigest()[:8], 16) % BUCKETS
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


_SHARE = {"test": 1 / BUCKETS, "validation": 1 / BUCKETS, "train": (BUCKETS - 2) / BUCKETS}


# --------------------------------------------------------------------------- config


def _tasks(data) -> list[str]:
    task = data.task
    names = [task] if isinstance(task, str) else list(task) if isinstance(task, (list, tuple)) else None
    if not names or not all(isinstance(n, str) and n for n in names):
        raise UserError(f"config: data.task must be a reasoning-gym task name or a list of them (got {task!r})"[:300])
    return names


def _unknown_task(name: str, known: list[str]) -> UserError:
    if name == "composite":
        return UserError("config: data.task 'composite': mix tasks with a list instead, "
                         "e.g. data.task=[basic_arithmetic,chain_sum] data.weights=[2,1]")
    guess = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{guess[0]}'?" if guess else f"choose from {', '.join(known)}"
    return UserError(f"config: unknown reasoning-gym task '{name}' in data.task ({hint})")


def _task_configs(data, names: list[str]) -> dict[str, dict]:
    """{task: its config keys}: data.task_config itself for one task, keyed by task for a list."""
    given = dict(data.task_config or {})
    if len(names) == 1:
        return {names[0]: given}
    for key, value in given.items():
        if key not in names:
            raise UserError(f"config: data.task_config.{key}: with a list of tasks, task_config is keyed by "
                            f"task name ({', '.join(names)})")
        if not isinstance(value, dict):
            raise UserError(f"config: data.task_config.{key} must be a mapping of that task's settings")
    return {n: dict(given.get(n) or {}) for n in names}


def _check_task_config(name: str, settings: dict, where: str) -> None:
    """The task's config class accepts these keys and values (its own validate() included)."""
    config_cls = _rg().factory.DATASETS[name][1]
    accepted = [f.name for f in fields(config_cls)] if is_dataclass(config_cls) else []
    for key in settings:
        if key in RESERVED:
            raise UserError(f"config: {where}.{key}: set {RESERVED[key]} instead")
        if key not in accepted:
            options = [a for a in accepted if a not in RESERVED]
            guess = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
            hint = f"did you mean '{guess[0]}'?" if guess else f"{name} takes {', '.join(options)}"
            raise UserError(f"config: unknown key '{where}.{key}' for reasoning-gym task '{name}' ({hint})")
    try:
        config = config_cls(**settings)
        if hasattr(config, "validate"):
            config.validate()
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"config: {where} for reasoning-gym task '{name}': {detail}") from None


def _weights(data, names: list[str]) -> list[float]:
    if data.weights is None:
        return [1.0] * len(names)
    if len(names) == 1:
        raise UserError("config: data.weights mixes a list of tasks; data.task names one")
    weights = list(data.weights)
    if len(weights) != len(names):
        raise UserError(f"config: data.weights has {len(weights)} entries for {len(names)} tasks in data.task")
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise UserError(f"config: data.weights[{i}] must be a positive number (got {w!r})")
    return [float(w) for w in weights]


def check_config(data) -> None:
    """Every data=reasoning_gym setting, before anything is generated or any model loads."""
    if data.split not in SPLITS:
        raise UserError(f"config: data.split must be one of {', '.join(SPLITS)} for data=reasoning_gym "
                        f"(got '{data.split}')")
    if data.num_problems < 0:
        raise UserError(f"config: data.num_problems must be >= 0 (got {data.num_problems})")
    names = _tasks(data)
    known = task_names()
    for name in names:
        if name not in known:
            raise _unknown_task(name, known)
    if len(set(names)) != len(names):
        raise UserError(f"config: data.task lists a task twice ({', '.join(names)})")
    configs = _task_configs(data, names)
    for name in names:
        _check_task_config(name, configs[name], "data.task_config" + ("" if len(names) == 1 else f".{name}"))
    _weights(data, names)


# --------------------------------------------------------------------------- generation


def _spec_key(name: str, settings: dict) -> str:
    return json.dumps([name, settings], sort_keys=True, default=str)


_SCORING: dict[str, Any] = {}   # (task, settings) key -> a generator instance whose score_answer we call


def _scoring_dataset(name: str, settings: dict):
    """A generator instance of (task, settings) for score_answer (its seed and size do not matter):
    the one the problems were drawn from when they were loaded in this process, else a new one."""
    key = _spec_key(name, settings)
    if key not in _SCORING:
        _SCORING[key] = _rg().create_dataset(name, **settings)
    return _SCORING[key]


def _remember(names: list[str], configs: dict[str, dict], dataset) -> None:
    parts = getattr(dataset, "datasets", None) if len(names) > 1 else {names[0]: dataset}
    for name, part in (parts or {}).items():
        if name in configs:
            _SCORING.setdefault(_spec_key(name, configs[name]), part)


def _chunk_seed(seed: int, split: str, chunk: int) -> int:
    """Seeds far apart per (seed, split, chunk): reasoning-gym draws entry i from Random(seed + i)."""
    digest = hashlib.sha256(f"reasoner-rgym:{seed}:{split}:{chunk}".encode()).hexdigest()
    return int(digest[:8], 16)


def _generator(names: list[str], configs: dict[str, dict], weights: list[float], seed: int):
    """A reasoning-gym dataset of CHUNK entries: the task itself, or the package's weighted composite."""
    rg = _rg()
    if len(names) == 1:
        return rg.create_dataset(names[0], seed=seed, size=CHUNK, **configs[names[0]])
    from reasoning_gym.composite import DatasetSpec

    specs = [DatasetSpec(name=n, weight=w, config=dict(configs[n])) for n, w in zip(names, weights)]
    return rg.create_dataset("composite", seed=seed, size=CHUNK, datasets=specs)


def _entries(names, configs, weights, seed: int, split: str):
    """Entries of the split's own seeds, chunk after chunk, with their question's split."""
    chunk = 0
    while True:
        try:
            dataset = _generator(names, configs, weights, _chunk_seed(seed, split, chunk))
        except (AssertionError, ValueError, TypeError) as exc:
            raise UserError(f"data=reasoning_gym task {'+'.join(names)}: {str(exc).strip()[:200]}") from None
        _remember(names, configs, dataset)
        for i in range(CHUNK):
            entry = dataset[i]
            yield entry, split_of(entry["question"])
        chunk += 1


def _draw(names, configs, weights, seed: int, split: str, wanted: int) -> list[dict]:
    """Up to `wanted` entries with distinct questions of the split; stops early when the task's
    question space runs dry (no new question of the split in max(2000, 20 * found) / share draws)."""
    seen: set[str] = set()
    found: list[dict] = []
    misses = 0
    if wanted <= 0:
        return found
    for entry, where in _entries(names, configs, weights, seed, split):
        question = entry["question"]
        if where != split or question in seen:
            misses += 1
            if misses > max(2000, 20 * len(found)) / _SHARE[split]:
                break
            continue
        misses = 0
        seen.add(question)
        found.append(entry)
        if len(found) >= wanted:
            break
    return found


def _answer_text(answer: Any) -> str:
    """Problem.answer is a string; tasks with many valid answers (graph colouring) have none."""
    if answer is None:
        return ""
    return answer if isinstance(answer, str) else str(answer)


def load_problems(cfg) -> list[Problem]:
    """cfg.num_problems problems of cfg.split (the first cfg.limit when smaller), the same for the
    same settings."""
    check_config(cfg)
    names = _tasks(cfg)
    configs = _task_configs(cfg, names)
    weights = _weights(cfg, names)
    wanted = cfg.num_problems if cfg.limit is None else min(cfg.num_problems, max(cfg.limit, 0))
    found = _draw(names, configs, weights, cfg.seed, cfg.split, wanted)
    if wanted and not found:
        raise UserError(f"data=reasoning_gym task {'+'.join(names)}: no {cfg.split} questions in its question "
                        "space for these settings; widen data.task_config")
    problems: list[Problem] = []
    for i in range(wanted):
        entry = found[i % len(found)]
        task = entry.get("metadata", {}).get("source_dataset") or names[0]
        if task not in configs:   # a generator that names itself otherwise: score with the one asked for
            task = names[0]
        meta = {"task": task, "task_config": configs[task], "split": cfg.split, "entry": entry}
        if i >= len(found):
            meta["repeat_of"] = problems[i % len(found)].id
        problems.append(Problem(id=f"rg-{task}-{cfg.split}-{cfg.seed}-{i}", prompt=entry["question"],
                                answer=_answer_text(entry.get("answer")), source=f"reasoning_gym/{task}",
                                meta=meta))
    return problems


# --------------------------------------------------------------------------- scoring


def score(pred: str | None, problem: Problem) -> float:
    """The task's own score_answer(pred, entry) in [0, 1] (the caller adds the time limit)."""
    entry = problem.meta.get("entry")
    task = problem.meta.get("task")
    if not isinstance(entry, dict) or not isinstance(task, str):
        raise UserError(f"problem {problem.id}: not a reasoning-gym problem (no meta entry/task to score against)")
    dataset = _scoring_dataset(task, problem.meta.get("task_config") or {})
    return float(dataset.score_answer(pred, entry))
