"""Seconds per GRPO step and tokens/s: reasoner's online trainer vs TRL's GRPOTrainer (CPU).

Same tiny model (same init), same batch (PROMPTS x G completions), same fixed completion length
(EOS ignored on both sides), beta = 0, one optimisation pass per batch, seq-mean-token-mean loss
(TRL loss_type="grpo"). TRL is run with gradient checkpointing on (its default) and off.
`--precision bf16`: both sides train under bf16 autocast (ours optim.precision=bf16, TRL bf16=True);
`--trl-precision` sets TRL's apart.
Each side: one warm-up step, then the mean over --steps steps (generation + update). Both wall
seconds and process CPU seconds are reported: on a shared machine CPU time is the fairer measure.

    python scripts/bench_grpo_vs_trl.py --prompts 4 --group 8 --length 48 --steps 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import torch


def build_cfg(args):
    from reasoner import config

    return config.load("train_rl", [
        f"model.tiny.hidden_size={args.hidden}", f"model.tiny.num_layers={args.layers}", "model.tiny.num_heads=4",
        "model.tiny.num_kv_heads=2", f"model.tiny.intermediate_size={4 * args.hidden}", "data.num_problems=500",
        f"prompts_per_step={args.prompts}", f"generation.n={args.group}", f"generation.max_new_tokens={args.length}",
        f"generation.batch_size={args.prompts * args.group}", f"batch_size={args.prompts * args.group}",
        "algo.loss_aggregation=seq-mean-token-mean", "algo.beta=0.0", "optim.lr=1e-5", f"steps={args.steps + 1}",
        f"optim.precision={args.precision}",
        "eval_every=0", "save_every=0", "run_dir=" + tempfile.mkdtemp(prefix="bench-ours-"),
    ])


def bench_ours(args) -> dict:
    from reasoner.generation.hf import HFGenerator
    from reasoner.models import load_policy
    from pathlib import Path

    from reasoner.algos.registry import get_algorithm
    from reasoner.rl.recipe import OnlineRecipe
    from reasoner.rl.rewards import RewardModel
    from reasoner.tasks import get_task
    from reasoner.train.precision import Precision

    cfg = build_cfg(args)
    torch.manual_seed(0)
    model, tok = load_policy(cfg.model)
    task = get_task("arith")
    trainer = OnlineRecipe(cfg, get_algorithm("grpo")(cfg), model, tok, task.load_problems(cfg.data), task,
                           RewardModel(cfg.reward, task))
    trainer.setup(Path(cfg.run_dir))
    trainer.generator = HFGenerator(model, tok, batch_size=args.prompts * args.group, ignore_eos=True)
    precision = Precision(cfg.optim.precision, trainer.models().values())  # as the training loop does
    times, cpu, tokens = [], [], []
    for i in range(args.steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        with precision.region():
            m = trainer.train_step(i).metrics
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            tokens.append(m["response_len"] * args.prompts * args.group)
    return _summary(times, cpu, sum(tokens))


def _summary(times, cpu, tokens) -> dict:
    return {"s_per_step": sum(times) / len(times), "tokens_per_s": tokens / sum(times),
            "cpu_s_per_step": sum(cpu) / len(cpu), "tokens_per_cpu_s": tokens / sum(cpu)}


def trl_verifier(task):
    """The task's answer check as a TRL reward function (gold in the dataset's `answer` column)."""
    def verifier(prompts, completions, answer, **_):
        return [1.0 if task.grade(c, a).correct else 0.0 for c, a in zip(completions, answer)]

    return verifier


def trl_checkpointing_key(config_cls) -> str:
    """transformers 5.24's TrainingArguments renamed gradient_checkpointing (now a warning alias)."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def bench_trl(args, gradient_checkpointing: bool) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from reasoner.models import load_policy
    from reasoner.prompts import build_prompt
    from reasoner.tasks import get_task

    cfg = build_cfg(args)
    torch.manual_seed(0)
    model, tok = load_policy(cfg.model)
    task = get_task("arith")
    problems = task.load_problems(cfg.data)[: args.prompts * (args.steps + 1)]
    ds = Dataset.from_list([{"prompt": build_prompt(p.prompt, tok, "none", None, "arith"), "answer": p.answer} for p in problems])

    verifier = trl_verifier(task)
    class Timer(TrainerCallback):
        def __init__(self):
            self.begin, self.times, self.cpu = None, [], []

        def on_step_begin(self, *a, **k):
            self.begin = (time.perf_counter(), time.process_time())

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.begin[0])
            self.cpu.append(time.process_time() - self.begin[1])

    timer = Timer()
    checkpointing = trl_checkpointing_key(GRPOConfig)
    conf = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group, max_completion_length=args.length, generation_kwargs={"min_new_tokens": args.length},
        temperature=1.0, beta=0.0, num_iterations=1, loss_type="grpo", scale_rewards="group", learning_rate=1e-5,
        max_steps=args.steps + 1, logging_steps=1, report_to="none", use_cpu=True, bf16=(args.trl_precision or args.precision) == "bf16",
        save_strategy="no",
        shuffle_dataset=False, dataloader_num_workers=0, **{checkpointing: gradient_checkpointing},
    )
    trainer = GRPOTrainer(model=model, reward_funcs=verifier, args=conf, train_dataset=ds, processing_class=tok, callbacks=[timer])
    trainer.train()
    times, cpu = timer.times[1:], timer.cpu[1:]
    return _summary(times, cpu, args.prompts * args.group * args.length * len(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--length", type=int, default=48)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="both sides' training precision: ours optim.precision, TRL bf16=True (autocast)")
    ap.add_argument("--trl-precision", choices=("fp32", "bf16"), help="TRL's own, when it differs from --precision")
    args = ap.parse_args()
    import trl

    results = {"ours": bench_ours(args), "trl_gc_on": bench_trl(args, True), "trl_gc_off": bench_trl(args, False)}
    print(json.dumps({"args": vars(args), "threads": torch.get_num_threads(), "trl": trl.__version__, "results": results}, indent=2))
    print("| trainer | wall s / step | tokens / wall s | CPU s / step | tokens / CPU s | ours vs it (wall, CPU) |")
    print("|---|---|---|---|---|---|")
    ours = results["ours"]
    for name, r in results.items():
        print(f"| {name} | {r['s_per_step']:.2f} | {r['tokens_per_s']:.0f} | {r['cpu_s_per_step']:.2f} | {r['tokens_per_cpu_s']:.0f} | "
              f"{ours['tokens_per_s'] / r['tokens_per_s']:.2f}x, {ours['tokens_per_cpu_s'] / r['tokens_per_cpu_s']:.2f}x |")


if __name__ == "__main__":
    main()
