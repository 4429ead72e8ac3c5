"""Is bfloat16 faster than float32 for SmolLM2-135M on this CPU, and does it learn the same?

Three ways to run the same model, each measured for generation (the HF backend, greedy, a
fixed token count) and for one training step (LoRA and full fine-tuning, SFT loss on GSM8K
gold solutions):

- `fp32`: float32 weights (the default on CPU, `model.dtype=auto`);
- `autocast`: float32 weights under `torch.autocast("cpu", dtype=torch.bfloat16)`;
- `bf16`: bfloat16 weights (`model.dtype=bfloat16`; LoRA adapters stay float32, peft's default).

The HF backend runs linears on oneDNN-packed weights (`generation/cpu_linear.py`); that path
bypasses autocast (it is not an autocast op), so generation is also timed without it
(`fast_linear=False`) to give autocast a fair chance. Timings are medians of --repeats runs
after one warm-up. `--learn-steps K` also trains K LoRA SFT steps from the same start in each
mode and prints the losses and a held-out loss, so "learning unchanged" is a measurement.

    OMP_NUM_THREADS=1 python scripts/bench_bf16_cpu.py --out /work/runs/real/bench_bf16.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoner.config import DataConfig, ModelConfig  # noqa: E402
from reasoner.generation import HFGenerator, SamplingParams  # noqa: E402
from reasoner.models import load_policy  # noqa: E402
from reasoner.prompts import build_prompt  # noqa: E402
from reasoner.train.sft import Example, response_loss, tokenize_example  # noqa: E402
from reasoner.tasks import get_task  # noqa: E402
from reasoner.utils.train import build_optimizer, pad_batch  # noqa: E402

GSM8K_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"


def autocast(mode: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if mode == "autocast" else contextlib.nullcontext()


def load(mode: str, lora: bool):
    cfg = ModelConfig(name_or_path="smollm2-135m", device="cpu", dtype="bfloat16" if mode == "bf16" else "float32")
    cfg.lora.enabled = lora
    torch.manual_seed(0)
    return load_policy(cfg)


def gsm8k_examples(path: Path, count: int, offset: int, tokenizer) -> list[Example]:
    task = get_task("gsm8k")
    problems = task.load_problems(DataConfig(name="gsm8k", path=str(path), split="train"))[offset:offset + count]
    return [Example(build_prompt(p.prompt, tokenizer, task="gsm8k"), task.format_solution(p)) for p in problems]


def median_time(fn, repeats: int) -> tuple[float, list[float], float]:
    """(median wall s, wall s of each run, median CPU s). On a shared machine the wall time
    carries other jobs' load; the process CPU time (one thread) is the steadier comparison."""
    fn()  # warm-up: lazy inits, oneDNN packing, allocator
    runs, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(runs), runs, statistics.median(cpu)


def bench_generation(mode: str, batch: int, max_new: int, repeats: int, fast_linear: bool) -> dict:
    model, tok = load(mode, lora=False)
    prompts = [ex.prompt for ex in gsm8k_examples(GSM8K_TRAIN, batch, 0, tok)]
    gen = HFGenerator(model, tok, batch_size=batch, ignore_eos=True, fast_linear=fast_linear)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new, seed=0)
    outs = {}

    def once():
        with autocast(mode):
            outs["c"] = gen.generate(prompts, params)

    secs, runs, cpu = median_time(once, repeats)
    tokens = sum(len(r[0].token_ids) for r in outs["c"])
    return {"kind": "generate", "mode": mode, "fast_linear": fast_linear, "batch": batch, "max_new_tokens": max_new,
            "tokens": tokens, "median_s": round(secs, 3), "runs_s": [round(r, 3) for r in runs],
            "median_cpu_s": round(cpu, 3), "tok_s": round(tokens / secs, 1), "tok_per_cpu_s": round(tokens / cpu, 1),
            "first_ids": [r[0].token_ids[:max_new] for r in outs["c"]]}


def train_batch(tok, examples, max_length: int):
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    enc = [tokenize_example(tok, ex, max_length) for ex in examples]
    return pad_batch([e[0] for e in enc], pad_id, [e[1] for e in enc])


def sft_step(model, optimizer, mode: str, ids, mask, labels) -> float:
    optimizer.zero_grad(set_to_none=True)
    with autocast(mode):
        loss_sum, n = response_loss(model, ids, mask, labels)
        loss = loss_sum / max(1, n)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    return float(loss)


def bench_train(mode: str, lora: bool, batch: int, max_length: int, repeats: int) -> dict:
    model, tok = load(mode, lora)
    model.train()
    ids, mask, labels = train_batch(tok, gsm8k_examples(GSM8K_TRAIN, batch, 0, tok), max_length)
    optimizer = build_optimizer(model.parameters(), lr=1e-6, weight_decay=0.0, betas=(0.9, 0.95))
    secs, runs, cpu = median_time(lambda: sft_step(model, optimizer, mode, ids, mask, labels), repeats)
    tokens = int(mask.sum())
    return {"kind": "train_step", "mode": mode, "lora": lora, "batch": batch, "tokens": tokens,
            "median_s": round(secs, 3), "runs_s": [round(r, 3) for r in runs], "median_cpu_s": round(cpu, 3),
            "tok_s": round(tokens / secs, 1), "tok_per_cpu_s": round(tokens / cpu, 1)}


def learning_check(mode: str, steps: int, batch: int, max_length: int, lr: float) -> dict:
    """K LoRA SFT steps over distinct GSM8K batches from the same start; held-out loss before/after."""
    model, tok = load(mode, lora=True)
    optimizer = build_optimizer(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    held = train_batch(tok, gsm8k_examples(GSM8K_TRAIN, batch, 7000, tok), max_length)

    def held_loss() -> float:
        model.eval()
        with torch.no_grad(), autocast(mode):
            loss_sum, n = response_loss(model, *held)
        model.train()
        return float(loss_sum) / n

    before = held_loss()
    model.train()
    losses = []
    for s in range(steps):
        batch_t = train_batch(tok, gsm8k_examples(GSM8K_TRAIN, batch, s * batch, tok), max_length)
        losses.append(round(sft_step(model, optimizer, mode, *batch_t), 4))
    return {"kind": "learning", "mode": mode, "steps": steps, "lr": lr, "train_losses": losses,
            "held_out_loss_before": round(before, 4), "held_out_loss_after": round(held_loss(), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", nargs="+", default=["fp32", "autocast", "bf16"])
    ap.add_argument("--gen-batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=320)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--learn-steps", type=int, default=0)
    ap.add_argument("--learn-lr", type=float, default=2e-4)
    ap.add_argument("--skip", nargs="*", default=[], choices=["generate", "train"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import transformers

    transformers.utils.logging.disable_progress_bar()  # the GGUF dequantisation bar, once per load

    rows = []

    def emit(row):
        shown = {k: v for k, v in row.items() if k != "first_ids"}
        print(json.dumps(shown), flush=True)
        rows.append(row)

    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "load_avg_start": os.getloadavg()}
    print(json.dumps(env), flush=True)
    if "generate" not in args.skip:
        for batch in args.gen_batches:
            for mode in args.modes:
                emit(bench_generation(mode, batch, args.max_new_tokens, args.repeats, fast_linear=True))
                if batch > 1 and mode in ("fp32", "autocast"):  # packed linears bypass autocast
                    emit(bench_generation(mode, batch, args.max_new_tokens, args.repeats, fast_linear=False))
        ref = {r["batch"]: r["first_ids"] for r in rows if r["kind"] == "generate" and r["mode"] == "fp32" and r["fast_linear"]}
        for r in rows:
            if r["kind"] == "generate" and r["batch"] in ref:
                same = sum(a == b for a, b in zip(r["first_ids"], ref[r["batch"]]))
                r["greedy_identical_to_fp32"] = f"{same}/{len(r['first_ids'])}"
                print(json.dumps({"mode": r["mode"], "batch": r["batch"], "fast_linear": r["fast_linear"],
                                  "greedy_identical_to_fp32": r["greedy_identical_to_fp32"]}), flush=True)
    if "train" not in args.skip:
        for lora in (True, False):
            for mode in args.modes:
                emit(bench_train(mode, lora, args.train_batch, args.max_length, args.repeats))
    for mode in args.modes if args.learn_steps else []:
        emit(learning_check(mode, args.learn_steps, args.train_batch, args.max_length, args.learn_lr))
    env["load_avg_end"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"env": env, "rows": [{k: v for k, v in r.items() if k != "first_ids"} for r in rows]},
                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
