"""`reasoner decode`: generate over a dataset, grade, report accuracy; plain sampling or search.

search=sample (default): greedy or n samples per problem, pass@1 / maj@k / pass@k.
search=NAME (majority, best_of_n, beam, mcts, ...; see reasoner.search): one answer per problem
chosen by the method under budget n = generation.n, with the generations and tokens it spent.
Results go to run_dir/results.jsonl (one line per problem, appended as chunks finish, so an
interrupted run resumes where it stopped) and run_dir/summary.json.
sweep=[n, ...]: every method of sweep_methods at every budget -> sweep.jsonl, sweep.md, sweep.png.
"""

from __future__ import annotations

import time
from pathlib import Path

from reasoner.errors import UserError
from reasoner.evaluation import sampling_params
from reasoner.utils.progress import log, progress


def answer_key(pred: str | None) -> str | None:
    """Key under which equal answers are grouped for majority vote."""
    from reasoner.grading import normalize_answer

    return None if pred is None else normalize_answer(pred)


def problem_record(problem, prompt: str, completions, task, ks: list[int], timeout: float) -> dict:
    from reasoner.metrics import maj_at_k, pass_at_k

    samples, correct, keys = [], [], []
    for c in completions:
        pred, ok = task.grade(c.text, problem, timeout)
        samples.append({"response": c.text, "pred_answer": pred, "correct": ok,
                        "finish_reason": c.finish_reason, "num_tokens": len(c.token_ids)})
        correct.append(ok)
        keys.append(answer_key(pred))
    n, c = len(correct), sum(correct)
    rec = {"id": problem.id, "prompt": prompt, "gold_answer": problem.answer, "search": "sample", "n": n,
           "samples": samples, "pass@1": c / n if n else 0.0}
    for k in ks:
        if k <= n:
            rec[f"pass@{k}"] = pass_at_k(n, c, k)
            rec[f"maj@{k}"] = maj_at_k(keys, correct, k)
    return rec


def timing(records: list[dict], tokens_of) -> tuple[float, float | None]:
    """(wall_s, tokens_per_s) over every segment of a run: each record holds its share of the
    wall time of the chunk that produced it, so a resumed run adds up all of its segments."""
    timed = [r for r in records if isinstance(r.get("wall_s"), (int, float))]
    wall = sum(r["wall_s"] for r in timed)
    tokens = sum(tokens_of(r) for r in timed)
    return round(wall, 2), (round(tokens / wall, 1) if wall > 0 else None)


def _sample_tokens(rec: dict) -> int:
    return sum(s["num_tokens"] for s in rec["samples"])


def summarize(records: list[dict], ks: list[int]) -> dict:
    n = len(records)
    summary = {"problems": n, "accuracy": sum(r["pass@1"] for r in records) / n if n else 0.0}
    for k in ks:
        for metric in (f"pass@{k}", f"maj@{k}"):
            vals = [r[metric] for r in records if metric in r]
            if vals:
                summary[metric] = sum(vals) / len(vals)
    summary["samples"] = sum(len(r["samples"]) for r in records)
    summary["generated_tokens"] = sum(_sample_tokens(r) for r in records)
    summary["wall_s"], summary["tokens_per_s"] = timing(records, _sample_tokens)
    return summary


def load_done(path: Path) -> dict[str, dict]:
    """Records already written by an earlier (interrupted) run of the same command."""
    from reasoner.errors import DataError
    from reasoner.utils.io import read_jsonl_tolerant

    if not path.exists():
        return {}
    records, _ = read_jsonl_tolerant(path)
    for i, r in enumerate(records):
        if not (isinstance(r, dict) and isinstance(r.get("id"), str)):
            raise DataError(str(path), i + 1, None, "not a decode result record (use another run_dir)")
    return {r["id"]: r for r in records}


def check_resume(done: dict[str, dict], name: str, n: int, path: Path) -> None:
    """Refuse to mix results of another method or budget into one results file."""
    for rec in done.values():
        was = (rec.get("search", "sample"), rec.get("n", len(rec.get("samples", [])) or None))
        if was != (name, n):
            raise UserError(f"{path}: holds results of search={was[0]} n={was[1]}, not search={name} n={n}; "
                            "use another run_dir")


def run(cfg) -> dict:
    """Dispatch: a budget sweep, plain sampling, or one search method."""
    if cfg.sweep:
        return run_sweep(cfg)
    if cfg.search.name == "sample":
        if cfg.search.params:
            raise UserError(f"search.params.{next(iter(cfg.search.params))}: search 'sample' takes no params")
        return run_sample(cfg)
    return run_search(cfg)


def run_sample(cfg) -> dict:
    from reasoner.generation.factory import build_generator, local_model_dir
    from reasoner.models import load_policy, load_tokenizer
    from reasoner.prompts import bound_problems, build_prompt
    from reasoner.tasks import get_task
    from reasoner.utils.io import append_jsonl
    from reasoner.utils.io import write_json_atomic
    from reasoner.utils.run import prepare_run_dir

    ks = sorted({k for k in cfg.k if k <= cfg.generation.n} | {1})
    task = get_task(cfg.data.name).derive(cfg.grader, cfg.data.answer_fallback)
    problems = task.load_problems(cfg.data)
    if not problems:
        raise UserError(f"data '{cfg.data.name}': no problems to decode")
    problems = bound_problems(problems, load_tokenizer(cfg.model), cfg.model, cfg.data)  # before the model loads
    if cfg.generation.n > 1 and cfg.generation.temperature == 0:  # after the data checks: an error stays one line
        log("note: generation.n > 1 with temperature 0 gives n identical greedy samples")
    model, tokenizer = load_policy(cfg.model)
    problems = bound_problems(problems, tokenizer, cfg.model, cfg.data, cfg.generation.max_new_tokens, model)
    generator = build_generator(cfg.generation, model, tokenizer, model_dir=local_model_dir(cfg.model))
    run_dir = prepare_run_dir(cfg, "decode")
    results_path = run_dir / "results.jsonl"
    done = load_done(results_path)
    check_resume(done, "sample", cfg.generation.n, results_path)
    todo = [p for p in problems if p.id not in done]
    if done:
        log(f"resuming: {len(done)} problems already decoded in {results_path}")
    params = sampling_params(cfg.generation)
    chunk = max(1, cfg.generation.batch_size // max(1, cfg.generation.n))
    started, gen_tokens = time.time(), 0
    with progress() as bar:
        task_id = bar.add_task("decode", total=len(problems), completed=len(done), info="")
        for start in range(0, len(todo), chunk):
            batch = todo[start:start + chunk]
            t0 = time.time()
            prompts = [build_prompt(p.prompt, tokenizer, cfg.model.chat_template, cfg.model.system_prompt, cfg.data.name) for p in batch]
            outputs = generator.generate(prompts, params)
            recs = [problem_record(p, pr, outs, task, ks, cfg.answer_timeout) for p, pr, outs in zip(batch, prompts, outputs)]
            for r in recs:
                r["wall_s"] = round((time.time() - t0) / len(recs), 4)
            append_jsonl(results_path, recs)
            for r in recs:
                done[r["id"]] = r
            gen_tokens += sum(s["num_tokens"] for r in recs for s in r["samples"])
            elapsed = time.time() - started
            bar.update(task_id, completed=len(done), info=f"acc {sum(r['pass@1'] for r in done.values()) / len(done):.3f}  {gen_tokens / max(elapsed, 1e-9):.0f} tok/s")
    ordered = [done[p.id] for p in problems if p.id in done]
    summary = summarize(ordered, ks)
    summary.update({"model": cfg.model.name_or_path, "data": cfg.data.name, "split": cfg.data.split,
                    "search": cfg.search.name, "temperature": cfg.generation.temperature, "n": cfg.generation.n})
    write_json_atomic(run_dir / "summary.json", summary)
    print_summary(summary)
    return summary


def print_summary(summary: dict) -> None:
    """The headline numbers on stdout, one `key: value` per line."""
    keys = ["problems", "accuracy"] + sorted(k for k in summary if k.startswith(("pass@", "maj@"))) + ["generated_tokens", "wall_s", "tokens_per_s"]
    for k in keys:
        v = summary.get(k)
        print(f"{k}: {v:.4f}" if isinstance(v, float) and k not in ("wall_s", "tokens_per_s") else f"{k}: {v}")


# --------------------------------------------------------------------------- search and sweeps


def method_params(cfg, names: list[str]) -> dict[str, dict]:
    """Resolved params of each method: search.params for search.name, conf/search/NAME.yaml
    for the other methods of a sweep; checked before anything is loaded or written."""
    from reasoner.search import get_method, resolve_params

    plan = {}
    for name in names:
        if name == "sample":
            raise UserError("sweep_methods: 'sample' has no budget to sweep; use majority (self-consistency)")
        method = get_method(name)
        params = cfg.search.params if name == cfg.search.name else _yaml_params(name)
        plan[name] = resolve_params(name, params, cfg.generation, cfg.scorer)
        if method.needs_scorer and cfg.scorer.kind == "none":
            raise UserError(f"search '{name}' needs a step scorer: set scorer.kind=prm scorer.path=<PRM dir> "
                            "(e.g. a `reasoner train-prm` run's final/)")
    return plan


def _yaml_params(name: str) -> dict:
    from omegaconf import OmegaConf

    from reasoner.config import conf_dir

    path = conf_dir() / "search" / f"{name}.yaml"
    if not path.is_file():
        return {}
    return dict(OmegaConf.to_container(OmegaConf.load(path)).get("params") or {})


def _setup(cfg):
    """Task, grader, problems, prompts, generator and scorer for search and sweeps."""
    from reasoner.generation.factory import build_generator, local_model_dir
    from reasoner.models import load_policy, load_tokenizer
    from reasoner.prompts import bound_problems, build_prompt
    from reasoner.scoring import load_scorer
    from reasoner.search import SearchTask
    from reasoner.tasks import get_task

    task = get_task(cfg.data.name).derive(cfg.grader, cfg.data.answer_fallback)
    problems = task.load_problems(cfg.data)
    if not problems:
        raise UserError(f"data '{cfg.data.name}': no problems to decode")
    problems = bound_problems(problems, load_tokenizer(cfg.model), cfg.model, cfg.data)  # before any model loads
    scorer = load_scorer(cfg.scorer, cfg.model.device) if cfg.scorer.kind != "none" else None
    model, tokenizer = load_policy(cfg.model)
    problems = bound_problems(problems, tokenizer, cfg.model, cfg.data, cfg.generation.max_new_tokens, model)
    generator = build_generator(cfg.generation, model, tokenizer, model_dir=local_model_dir(cfg.model))
    prompts = [build_prompt(p.prompt, tokenizer, cfg.model.chat_template, cfg.model.system_prompt, cfg.data.name)
               for p in problems]
    search_task = SearchTask.from_task(task, cfg.answer_timeout)

    def grade(pred, gold):
        return task.grade_answer(pred, gold, cfg.answer_timeout)

    return problems, prompts, generator, scorer, search_task, grade


def search_record(problem, prompt: str, result, grade, name: str, n: int) -> dict:
    cands = [{**c, "correct": grade(c["answer"], problem)} for c in result.candidates]
    correct = grade(result.answer, problem)
    return {"id": problem.id, "prompt": prompt, "gold_answer": problem.answer, "search": name, "n": n,
            "answer": result.answer, "correct": correct, "response": result.response,
            "oracle": correct or any(c["correct"] for c in cands), "generations": result.generations,
            "generated_tokens": result.generated_tokens, "candidates": cands}


def run_search(cfg) -> dict:
    from reasoner.search import get_method
    from reasoner.utils.io import append_jsonl
    from reasoner.utils.io import write_json_atomic
    from reasoner.utils.run import prepare_run_dir

    name, n = cfg.search.name, cfg.generation.n
    params = method_params(cfg, [name])[name]
    if n < 1:
        raise UserError(f"generation.n must be >= 1 for search '{name}' (it is the budget; got {n})")
    if params["temperature"] == 0 and n > 1:
        log(f"note: search.params.temperature=0 makes the {n} samples of search '{name}' identical")
    problems, prompts, generator, scorer, task, grade = _setup(cfg)
    run_dir = prepare_run_dir(cfg, "decode")
    results_path = run_dir / "results.jsonl"
    done = load_done(results_path)
    check_resume(done, name, n, results_path)
    todo = [i for i, p in enumerate(problems) if p.id not in done]
    method, chunk = get_method(name), max(1, cfg.generation.batch_size)
    started, spent = time.time(), 0
    with progress() as bar:
        tid = bar.add_task(f"{name} n={n}", total=len(problems), completed=len(done), info="")
        for start in range(0, len(todo), chunk):
            idx = todo[start:start + chunk]
            t0 = time.time()
            results = method([prompts[i] for i in idx], generator, scorer, params, task, n)
            recs = [search_record(problems[i], prompts[i], r, grade, name, n) for i, r in zip(idx, results)]
            for r in recs:
                r["wall_s"] = round((time.time() - t0) / len(recs), 4)
            append_jsonl(results_path, recs)
            for r in recs:
                done[r["id"]] = r
            spent += sum(r["generated_tokens"] for r in recs)
            acc = sum(r["correct"] for r in done.values()) / len(done)
            bar.update(tid, completed=len(done), info=f"acc {acc:.3f}  {spent / max(time.time() - started, 1e-9):.0f} tok/s")
    ordered = [done[p.id] for p in problems if p.id in done]
    k = max(1, len(ordered))
    wall, rate = timing(ordered, lambda r: r["generated_tokens"])
    summary = {"problems": len(ordered), "accuracy": sum(r["correct"] for r in ordered) / k,
               "oracle": sum(r["oracle"] for r in ordered) / k,
               "generations_per_problem": sum(r["generations"] for r in ordered) / k,
               "tokens_per_problem": sum(r["generated_tokens"] for r in ordered) / k,
               "generated_tokens": sum(r["generated_tokens"] for r in ordered), "wall_s": wall,
               "tokens_per_s": rate,
               "model": cfg.model.name_or_path, "data": cfg.data.name, "split": cfg.data.split,
               "search": name, "n": n, "params": params, "scorer": cfg.scorer.kind}
    write_json_atomic(run_dir / "summary.json", summary)
    for key in ("problems", "accuracy", "oracle", "generations_per_problem", "tokens_per_problem", "generated_tokens",
                "wall_s", "tokens_per_s"):
        v = summary[key]
        print(f"{key}: {v:.4f}" if isinstance(v, float) and key not in ("wall_s", "tokens_per_s") else f"{key}: {v}")
    return summary


def sweep_budgets(values) -> list[int]:
    budgets = sorted(set(values))
    bad = [b for b in budgets if not isinstance(b, int) or isinstance(b, bool) or b < 1]
    if bad:
        raise UserError(f"sweep: budgets must be integers >= 1 (got {bad[0]!r})")
    return budgets


def run_sweep(cfg) -> dict:
    """Accuracy vs budget for every method of sweep_methods (default: search.name)."""
    from reasoner.search.report import markdown_table, plot
    from reasoner.search.sweep import Sweep, SweepPlan
    from reasoner.utils.io import write_json_atomic, write_text_atomic
    from reasoner.utils.run import prepare_run_dir

    budgets = sweep_budgets(cfg.sweep)
    names = list(dict.fromkeys(cfg.sweep_methods or [cfg.search.name]))
    plan = SweepPlan(method_params(cfg, names), budgets, chunk=max(1, cfg.generation.batch_size))
    problems, prompts, generator, scorer, task, grade = _setup(cfg)
    run_dir = prepare_run_dir(cfg, "decode")
    cells = Sweep(problems, prompts, generator, scorer, task, grade, run_dir).run(plan)
    title = f"{cfg.model.name_or_path} on {cfg.data.name} ({len(problems)} problems)"
    write_text_atomic(run_dir / "sweep.md", markdown_table(cells, title))
    plot(cells, run_dir / "sweep.png", title)
    summary = {"problems": len(problems), "budgets": budgets, "methods": names, "cells": cells,
               "model": cfg.model.name_or_path, "data": cfg.data.name, "scorer": cfg.scorer.kind}
    write_json_atomic(run_dir / "summary.json", summary)
    print(markdown_table(cells).split("\n\nEvery cell")[0])
    return summary
