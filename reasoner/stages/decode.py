"""`reasoner decode`: generate over a dataset, grade every sample, report pass@1 / maj@k / pass@k.

Results go to run_dir/results.jsonl (one line per problem, appended as chunks finish, so an
interrupted run resumes where it stopped) and run_dir/summary.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reasoner.errors import UserError
from reasoner.utils.progress import log, progress

SEARCH_METHODS = ("sample",)


def sampling_params(gen_cfg, stop: list[str] | None = None):
    from reasoner.generation.base import SamplingParams

    return SamplingParams(
        n=gen_cfg.n, temperature=gen_cfg.temperature, top_p=gen_cfg.top_p,
        max_new_tokens=gen_cfg.max_new_tokens, stop=list(stop if stop is not None else gen_cfg.stop),
        seed=gen_cfg.seed,
    )


def grade_sample(task, grader, response: str, gold: str, timeout: float) -> tuple[str | None, bool]:
    """Extract the answer of one response and grade it against the gold answer."""
    from reasoner.grading import extract_answer

    pred = extract_answer(response, task.answer_style)
    if pred is None:
        return None, False
    return pred, bool(grader(pred, gold, timeout=timeout))


def answer_key(pred: str | None) -> str | None:
    """Key under which equal answers are grouped for majority vote."""
    from reasoner.grading import normalize_answer

    return None if pred is None else normalize_answer(pred)


def problem_record(problem, prompt: str, completions, task, grader, ks: list[int], timeout: float) -> dict:
    from reasoner.metrics import maj_at_k, pass_at_k

    samples, correct, keys = [], [], []
    for c in completions:
        pred, ok = grade_sample(task, grader, c.text, problem.answer, timeout)
        samples.append({"response": c.text, "pred_answer": pred, "correct": ok,
                        "finish_reason": c.finish_reason, "num_tokens": len(c.token_ids)})
        correct.append(ok)
        keys.append(answer_key(pred))
    n, c = len(correct), sum(correct)
    rec = {"id": problem.id, "prompt": prompt, "gold_answer": problem.answer, "samples": samples,
           "pass@1": c / n if n else 0.0}
    for k in ks:
        if k <= n:
            rec[f"pass@{k}"] = pass_at_k(n, c, k)
            rec[f"maj@{k}"] = maj_at_k(keys, correct, k)
    return rec


def summarize(records: list[dict], ks: list[int], wall_s: float, gen_tokens: int) -> dict:
    n = len(records)
    summary = {"problems": n, "accuracy": sum(r["pass@1"] for r in records) / n if n else 0.0}
    for k in ks:
        for metric in (f"pass@{k}", f"maj@{k}"):
            vals = [r[metric] for r in records if metric in r]
            if vals:
                summary[metric] = sum(vals) / len(vals)
    summary["samples"] = sum(len(r["samples"]) for r in records)
    summary["generated_tokens"] = sum(s["num_tokens"] for r in records for s in r["samples"])
    summary["wall_s"] = round(wall_s, 2)
    summary["tokens_per_s"] = round(gen_tokens / wall_s, 1) if wall_s > 0 else None
    return summary


def load_done(path: Path) -> dict[str, dict]:
    """Records already written by an earlier (interrupted) run of the same command."""
    from reasoner.utils.io import read_jsonl_tolerant

    if not path.exists():
        return {}
    records, _ = read_jsonl_tolerant(path)
    return {r["id"]: r for r in records}


def run(cfg) -> dict:
    from reasoner.generation.factory import build_generator
    from reasoner.grading import get_grader
    from reasoner.models import load_policy
    from reasoner.prompts import build_prompt
    from reasoner.tasks import get_task
    from reasoner.utils.io import append_jsonl
    from reasoner.utils.run import prepare_run_dir, write_text_atomic

    if cfg.search.name not in SEARCH_METHODS:
        raise UserError(f"config: search '{cfg.search.name}' is not available (choose from {', '.join(SEARCH_METHODS)})")
    if cfg.generation.n > 1 and cfg.generation.temperature == 0:
        log("note: generation.n > 1 with temperature 0 gives n identical greedy samples")
    ks = sorted({k for k in cfg.k if k <= cfg.generation.n} | {1})
    task = get_task(cfg.data.name)
    grader = get_grader(cfg.grader or task.grader)
    problems = task.load_problems(cfg.data)
    if not problems:
        raise UserError(f"data '{cfg.data.name}': no problems to decode")
    model, tokenizer = load_policy(cfg.model)
    generator = build_generator(cfg.generation, model, tokenizer)
    run_dir = prepare_run_dir(cfg, "decode")
    results_path = run_dir / "results.jsonl"
    done = load_done(results_path)
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
            prompts = [build_prompt(p.prompt, tokenizer, cfg.model.chat_template, cfg.model.system_prompt, cfg.data.name) for p in batch]
            outputs = generator.generate(prompts, params)
            recs = [problem_record(p, pr, outs, task, grader, ks, cfg.answer_timeout) for p, pr, outs in zip(batch, prompts, outputs)]
            append_jsonl(results_path, recs)
            for r in recs:
                done[r["id"]] = r
            gen_tokens += sum(s["num_tokens"] for r in recs for s in r["samples"])
            elapsed = time.time() - started
            bar.update(task_id, completed=len(done), info=f"acc {sum(r['pass@1'] for r in done.values()) / len(done):.3f}  {gen_tokens / max(elapsed, 1e-9):.0f} tok/s")
    ordered = [done[p.id] for p in problems if p.id in done]
    summary = summarize(ordered, ks, time.time() - started, gen_tokens)
    summary.update({"model": cfg.model.name_or_path, "data": cfg.data.name, "split": cfg.data.split,
                    "search": cfg.search.name, "temperature": cfg.generation.temperature, "n": cfg.generation.n})
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    print_summary(summary)
    return summary


def print_summary(summary: dict) -> None:
    """The headline numbers on stdout, one `key: value` per line."""
    keys = ["problems", "accuracy"] + sorted(k for k in summary if k.startswith(("pass@", "maj@"))) + ["generated_tokens", "wall_s", "tokens_per_s"]
    for k in keys:
        v = summary.get(k)
        print(f"{k}: {v:.4f}" if isinstance(v, float) and k not in ("wall_s", "tokens_per_s") else f"{k}: {v}")


def greedy_accuracy(model, tokenizer, data_cfg, model_cfg, batch_size: int = 64, max_new_tokens: int = 128) -> float:
    """Greedy pass@1 of an in-memory model on a task's problems (for evaluation during training)."""
    from reasoner.generation.base import SamplingParams
    from reasoner.generation.hf import HFGenerator
    from reasoner.grading import get_grader
    from reasoner.prompts import build_prompt
    from reasoner.tasks import get_task

    task = get_task(data_cfg.name)
    grader = get_grader(task.grader)
    problems = task.load_problems(data_cfg)
    prompts = [build_prompt(p.prompt, tokenizer, model_cfg.chat_template, model_cfg.system_prompt, data_cfg.name) for p in problems]
    was_training = model.training
    model.eval()
    outs = HFGenerator(model, tokenizer, batch_size=batch_size).generate(
        prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens))
    if was_training:
        model.train()
    correct = [grade_sample(task, grader, o[0].text, p.answer, 5.0)[1] for p, o in zip(problems, outs)]
    return sum(correct) / max(1, len(correct))
