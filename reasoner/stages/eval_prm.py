"""`reasoner eval-prm`: how well a PRM (or value model) judges steps.

Against the gym's ground-truth step checker (label_source=truth, the default on data=arith) or
the labels stored with the trajectories (label_source=file: MC labels on GSM8K/MATH). Reports step
accuracy and exact step AUC, ProcessBench first-error F1 (harmonic mean of the accuracy on
erroneous and on correct solutions), the oracle-threshold F1 beside it, and solution AUC of the
min-aggregated score. Without eval_file it samples `samples_per_problem` solutions per held-out
problem from `model` and writes them (with ground-truth labels) to run_dir/samples.jsonl, so
other PRMs can be judged on the very same set with eval_file=.../samples.jsonl.

Outputs: samples.jsonl (when sampling), scores.jsonl (per solution), summary.json, a table on stdout.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from reasoner.errors import UserError
from reasoner.utils.progress import log, progress


def scorer_kind(path: str) -> str:
    """The scoring.load_scorer kind a directory holds: prm.json decides, else value / plain PRM."""
    from reasoner.models import VALUE_HEAD_FILE
    from reasoner.prm.model import read_spec

    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"prm_model '{path}': no such directory")
    spec = read_spec(root)
    if spec is not None:
        return "implicit" if spec.kind == "implicit" else "prm"
    return "value" if (root / VALUE_HEAD_FILE).is_file() else "prm"


def validate(cfg) -> None:
    if cfg.batch_size < 1 or cfg.samples_per_problem < 1:
        raise UserError("config: batch_size and samples_per_problem must be >= 1")
    if not 0.0 <= cfg.score_threshold <= 1.0:
        raise UserError(f"config: score_threshold {cfg.score_threshold} must be in [0, 1]")


def sample_examples(cfg, task, out_path: Path):
    """Sample the policy on held-out problems; label every step with the ground-truth checker."""
    from reasoner.data import Trajectory, write_jsonl_atomic
    from reasoner.generation.base import SamplingParams
    from reasoner.generation.factory import build_generator
    from reasoner.models import load_policy
    from reasoner.prm.examples import StepExample
    from reasoner.prompts import bound_problems, build_prompt

    problems = task.load_problems(cfg.data)
    if not problems:
        raise UserError(f"data '{cfg.data.name}': no problems to sample")
    model, tokenizer = load_policy(cfg.model)
    problems = bound_problems(problems, tokenizer, cfg.model, cfg.data, cfg.generation.max_new_tokens, model)
    generator = build_generator(cfg.generation, model, tokenizer)
    g = cfg.generation
    params = SamplingParams(n=cfg.samples_per_problem, temperature=g.temperature, top_p=g.top_p,
                            max_new_tokens=g.max_new_tokens, stop=list(g.stop), seed=g.seed)
    chunk = max(1, g.batch_size // cfg.samples_per_problem)
    trajs = []
    with progress() as bar:
        tid = bar.add_task("eval-prm: sample", total=len(problems), info="")
        for start in range(0, len(problems), chunk):
            batch = problems[start:start + chunk]
            prompts = [build_prompt(p.prompt, tokenizer, cfg.model.chat_template, cfg.model.system_prompt, cfg.data.name)
                       for p in batch]
            for p, prompt, outs in zip(batch, prompts, generator.generate(prompts, params)):
                for j, c in enumerate(outs):
                    steps = task.split_steps(c.text)
                    truth = task.check_steps(p, steps)
                    pred, ok = task.grade(c.text, p)
                    trajs.append(Trajectory(id=f"{p.id}/{j}", problem_id=p.id, prompt=prompt, response=c.text, steps=steps,
                                            pred_answer=pred, reward=1.0 if ok else 0.0,
                                            step_labels=[1.0 if v else 0.0 for v in truth],
                                            meta={"true_step_labels": truth, "finish_reason": c.finish_reason,
                                                  "model": cfg.model.name_or_path, "temperature": g.temperature}))
            bar.update(tid, completed=min(len(problems), start + chunk))
    write_jsonl_atomic(out_path, [t.to_dict() for t in trajs])
    del model, generator
    return [StepExample(t.id, t.problem_id, t.prompt, t.steps, t.step_labels, t.reward, t.meta) for t in trajs]


def run(cfg) -> dict:
    from reasoner.config import ScorerConfig
    from reasoner.models import load_tokenizer
    from reasoner.prm.evaluate import evaluate, format_table, reference_labels, resolve_mode
    from reasoner.prm.examples import read_examples
    from reasoner.prompts import bound_prompts
    from reasoner.scoring import load_scorer
    from reasoner.tasks import get_task
    from reasoner.utils.io import write_jsonl_atomic
    from reasoner.utils.io import write_json_atomic
    from reasoner.utils.run import prepare_run_dir

    validate(cfg)
    task = get_task(cfg.data.name).derive(fallback_last_number=cfg.data.answer_fallback)
    mode = resolve_mode(cfg.label_source, task)
    kind = scorer_kind(cfg.prm_model)
    examples = None
    if cfg.eval_file:
        examples = read_examples(cfg.eval_file, task.step_separator)
        reference_labels(examples, task, mode, cfg.prm.threshold, where=cfg.eval_file)  # unusable labels fail before any output
        prm_tokenizer = load_tokenizer(replace(cfg.model, name_or_path=cfg.prm_model, gguf_file=None))
        examples = bound_prompts(examples, prm_tokenizer, cfg.data)  # before the PRM loads
    elif mode != "truth":
        raise UserError(f"eval-prm without eval_file samples the policy and needs ground-truth labels; "
                        f"task '{task.name}' has no step checker: pass eval_file=trajectories.jsonl")
    run_dir = prepare_run_dir(cfg, "eval-prm")
    started = time.time()
    if examples is None:
        examples = sample_examples(cfg, task, run_dir / "samples.jsonl")
        log(f"sampled {len(examples)} solutions -> {run_dir / 'samples.jsonl'}")
    kept, hard, soft = reference_labels(examples, task, mode, cfg.prm.threshold)

    scorer = load_scorer(ScorerConfig(kind=kind, path=cfg.prm_model, batch_size=cfg.batch_size, prm=cfg.prm),
                         device=cfg.model.device)
    with progress() as bar:
        tid = bar.add_task("eval-prm: score", total=len(kept), info="")
        metrics, rows = evaluate(scorer, kept, hard, soft, cfg.score_threshold, batch_size=max(cfg.batch_size, 64),
                                 on_batch=lambda n: bar.update(tid, completed=n))
    write_jsonl_atomic(run_dir / "scores.jsonl", rows)
    summary = {**metrics, "prm_model": cfg.prm_model, "scorer_kind": kind, "label_source": mode,
               "eval_file": cfg.eval_file or str(run_dir / "samples.jsonl"),
               "outcome_accuracy": sum(ex.outcome for ex in kept) / len(kept),
               "wall_s": round(time.time() - started, 1)}
    write_json_atomic(run_dir / "summary.json", summary)
    print(format_table(summary))
    return summary
