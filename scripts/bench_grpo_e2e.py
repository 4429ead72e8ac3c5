"""End-to-end GRPO: reasoner's `train-rl algo=grpo` vs TRL's GRPOTrainer from the same SFT start.

Both sides train the same checkpoint for the same steps on the same prompts (PROMPTS x GROUP
rollouts a step, EOS-terminated, at most LENGTH new tokens, temperature 1, beta 0, one update per
batch, TRL's loss_type="grpo" = our seq-mean-token-mean, constant lr), then the final model of
each is scored greedily on the same held-out test problems by reasoner's evaluator. Reported: wall
seconds for the training run (model loading and the final evaluation excluded), rollouts, and the
held-out accuracy before and after, so a speed ratio comes with evidence that both learned alike.

    python scripts/bench_grpo_e2e.py --model runs/sft/final --steps 150 --runs 5 --side-by-side
    python scripts/bench_grpo_e2e.py --model runs/sft/final --steps 2 --runs 1      # smoke

`--side-by-side` runs ours and TRL at the same time, one torch thread each (same load on both:
the same-run ratio); otherwise one after the other. Each run is its own process (`--side`).
TRL's gradient checkpointing is off (`--trl-checkpointing` turns its default back on).
`--precision bf16` trains both sides under bf16 autocast (ours `optim.precision=bf16`, TRL
`bf16=True`); `--trl-precision` sets TRL's apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics as st
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_grpo_vs_trl import trl_checkpointing_key, trl_verifier  # noqa: E402  (the microbenchmark's TRL side)


def overrides(args, run_dir: str) -> list[str]:
    return [f"model.name_or_path={args.model}", f"steps={args.steps}", f"prompts_per_step={args.prompts}",
            f"generation.n={args.group}", f"generation.max_new_tokens={args.length}",
            f"generation.batch_size={args.prompts * args.group}", f"batch_size={args.prompts * args.group}",
            "algo.loss_aggregation=seq-mean-token-mean", "algo.beta=0.0", f"optim.lr={args.lr}",
            f"optim.precision={args.precision}",
            f"seed={args.seed}", "eval_every=0", "save_every=0", f"run_dir={run_dir}"]


def held_out(model, tok, cfg, problems: int) -> float:
    from reasoner.evaluation import held_out_accuracy

    return held_out_accuracy(model, tok, cfg.data, cfg.model, problems, max_new_tokens=cfg.generation.max_new_tokens)


def side_ours(args) -> dict:
    from reasoner import api
    from reasoner.models import load_policy

    run_dir = tempfile.mkdtemp(prefix="e2e-ours-")
    cfg = api.load_config("train-rl", overrides(args, run_dir))
    t0 = time.perf_counter()
    summary = api.run_config("train-rl", cfg)
    wall = time.perf_counter() - t0
    model, tok = load_policy(dataclasses.replace(cfg.model, name_or_path=str(Path(run_dir) / "final")))
    metrics = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train_s = sum(m.get("step_s", 0.0) for m in metrics)   # the steps alone: setup and the loop's last eval excluded
    return {"wall_s": wall, "train_s": train_s, "after": held_out(model, tok, cfg, args.eval_problems)}


def side_trl(args) -> dict:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from reasoner import api
    from reasoner.models import load_policy
    from reasoner.prompts import build_prompt
    from reasoner.tasks import get_task

    cfg = api.load_config("train-rl", overrides(args, tempfile.mkdtemp(prefix="e2e-cfg-")))
    model, tok = load_policy(cfg.model)
    task = get_task(cfg.data.name)
    problems = task.load_problems(cfg.data)[: args.prompts * args.steps]
    ds = Dataset.from_list([{"prompt": build_prompt(p.prompt, tok, cfg.model.chat_template, cfg.model.system_prompt,
                                                    cfg.data.name), "answer": p.answer} for p in problems])

    verifier = trl_verifier(task)
    checkpointing = trl_checkpointing_key(GRPOConfig)
    conf = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="e2e-trl-"), per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group, max_completion_length=args.length, temperature=1.0, beta=0.0,
        num_iterations=1, loss_type="grpo", scale_rewards="group", learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, max_steps=args.steps, logging_steps=10, report_to="none", use_cpu=True,
        bf16=(args.trl_precision or args.precision) == "bf16", save_strategy="no", seed=args.seed, shuffle_dataset=False, dataloader_num_workers=0,
        **{checkpointing: args.trl_checkpointing})
    trainer = GRPOTrainer(model=model, reward_funcs=verifier, args=conf, train_dataset=ds, processing_class=tok)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    # bf16=True leaves accelerate's autocast wrapper on model.forward: evaluate the plain model, as ours
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    return {"wall_s": wall, "train_s": wall, "after": held_out(model, tok, cfg, args.eval_problems)}


def start_accuracy(args) -> float:
    from reasoner import api
    from reasoner.models import load_policy

    cfg = api.load_config("train-rl", overrides(args, tempfile.mkdtemp(prefix="e2e-cfg-")))
    model, tok = load_policy(cfg.model)
    return held_out(model, tok, cfg, args.eval_problems)


def spawn(args, side: str) -> subprocess.Popen:
    argv = [sys.executable, __file__, "--side", side, *sys.argv[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a benchmark side failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the SFT checkpoint both sides start from")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-problems", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--side-by-side", action="store_true")
    ap.add_argument("--trl-checkpointing", action="store_true")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="training precision of both sides: ours optim.precision, TRL bf16=True (autocast)")
    ap.add_argument("--trl-precision", choices=("fp32", "bf16"), help="TRL's own, when it differs from --precision")
    ap.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        print(json.dumps((side_ours if args.side == "ours" else side_trl)(args)))
        return
    rows = []
    for i in range(args.runs):
        if args.side_by_side:
            procs = {s: spawn(args, s) for s in ("ours", "trl")}
            row = {s: result(p) for s, p in procs.items()}
        else:
            row = {s: result(spawn(args, s)) for s in ("ours", "trl")}
        row["ratio"] = row["trl"]["train_s"] / row["ours"]["train_s"]
        rows.append(row)
        print(f"run {i + 1}: ours {row['ours']['train_s']:.0f} s -> {100 * row['ours']['after']:.1f}%, "
              f"TRL {row['trl']['train_s']:.0f} s -> {100 * row['trl']['after']:.1f}%, ratio {row['ratio']:.2f}x", flush=True)
    import torch
    import transformers
    import trl

    print(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "side"}, "start": start_accuracy(args),
                      "median_ratio": st.median(r["ratio"] for r in rows), "runs": rows,
                      "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                   "trl": trl.__version__}}, indent=1))


if __name__ == "__main__":
    main()
