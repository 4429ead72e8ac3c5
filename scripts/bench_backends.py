"""Tokens/s of our HF backend, our vLLM backend and raw vLLM, side by side in one run.

Same model, same prompts (the first --batch GSM8K test questions under the model's chat
template, or fixed arithmetic prompts when ../shared/data is absent), temperature-1 sampling,
exactly --max-new-tokens tokens per sequence (EOS ignored), one generate call per timing.
Each backend runs in its own fresh process (vLLM's CPU worker pins threads and caches its
environment per process). Inside the vLLM worker, our `VLLMGenerator.generate` and raw
`LLM.generate` on the same engine alternate, so their ratio isolates our wrapper; `raw-vllm`
is a separate `vllm.LLM` with vLLM's own defaults (engine in a subprocess). The prefix cache
is reset before every timed call, so every call prefills its prompts. Run it in .venv-vllm:

    .venv-vllm/bin/python scripts/bench_backends.py --model smollm2-135m --batch 32 \
        --max-new-tokens 128 --repeats 3 --out bench_backends.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
ARITH = [f"Compute: (({7 * i + 3} + {13 * i % 97}) * {i % 9 + 2}) - {i % 7}" for i in range(256)]
BACKENDS = ("hf", "vllm", "raw-vllm")


# ---------------------------------------------------------------------- parent


def prepare(args, workdir: Path) -> dict:
    """Export the model to an HF directory vLLM can load, and fix the prompts."""
    from reasoner.config import ModelConfig
    from reasoner.generation.factory import export_model, local_model_dir
    from reasoner.models import load_policy
    from reasoner.prompts import build_prompt

    cfg = ModelConfig(name_or_path=args.model, device="cpu", dtype=args.dtype)
    model, tokenizer = load_policy(cfg)
    model_dir = local_model_dir(cfg) or str(export_model(model, tokenizer, parent=str(workdir)) / "model")
    if GSM8K.is_file():
        with GSM8K.open() as fh:
            questions = [json.loads(line)["question"] for _, line in zip(range(args.batch), fh)]
        task = "gsm8k"
    else:
        questions, task = ARITH[: args.batch], "arith"
    prompts = [build_prompt(q, tokenizer, "auto", None, task) for q in questions]
    prompts = [prompts[i % len(prompts)] for i in range(args.batch)]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    return {"model": args.model, "model_dir": model_dir, "dtype": args.dtype, "prompts": prompts,
            "prompt_tokens": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1)},
            "max_new_tokens": args.max_new_tokens, "repeats": args.repeats, "vllm_args": dict(args.vllm_arg)}


def run_worker(backend: str, spec_path: Path, timeout: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, "--spec", str(spec_path)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"worker {backend} failed (exit {proc.returncode})")
    out = json.loads(lines[-1][len("RESULT "):])
    out["process_s"] = round(time.perf_counter() - t0, 1)
    return out


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__}, load average {load}"


def summarize(results: dict[str, dict]) -> list[dict]:
    rows = []
    for name, res in results.items():
        for label, runs in res["runs"].items():
            best = max(runs)
            rows.append({"backend": label, "best_tok_s": round(best, 1), "runs_tok_s": [round(r, 1) for r in runs],
                         "init_s": res.get("init_s"), "worker": name})
    ref = next((r["best_tok_s"] for r in rows if r["backend"] == "raw vLLM (LLM.generate, vLLM defaults)"), None)
    same = next((r["best_tok_s"] for r in rows if r["backend"] == "raw vLLM (LLM.generate, same engine)"), None)
    for r in rows:
        r["vs_raw_vllm"] = round(r["best_tok_s"] / ref, 2) if ref else None
        r["vs_raw_same_engine"] = round(r["best_tok_s"] / same, 2) if same else None
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| backend | tok/s (best) | runs | vs raw vLLM (defaults) | vs raw vLLM (same engine) |",
             "|---|---:|---|---:|---:|"]
    for r in rows:
        runs = ", ".join(str(x) for x in r["runs_tok_s"])
        ratio = lambda v: f"{v}x" if v is not None else "-"  # noqa: E731
        lines.append(f"| {r['backend']} | {r['best_tok_s']} | {runs} | {ratio(r['vs_raw_vllm'])} | {ratio(r['vs_raw_same_engine'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="preset, HF directory or GGUF (as model=)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per backend; the fastest is reported")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--vllm-arg", nargs="*", default=[], type=_kv, help="extra vllm.LLM args as key=value (both vLLM workers)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per backend process")
    ap.add_argument("--out", default=None, help="write settings, rows and machine as JSON here")
    ap.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        result = WORKERS[args.worker](spec)
        print("RESULT " + json.dumps(result), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        spec = prepare(args, Path(tmp))
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        print(f"model {spec['model']} ({spec['dtype']}), batch {args.batch}, {args.max_new_tokens} new tokens, "
              f"prompt tokens {spec['prompt_tokens']}", flush=True)
        start_machine = machine()
        results = {}
        for backend in args.backends:
            results[backend] = run_worker(backend, spec_path, args.timeout)
            print(f"[{backend}] {json.dumps(results[backend])}", flush=True)
    rows = summarize(results)
    info = {"start": start_machine, "end": machine()}
    print(f"\nmachine at start: {info['start']}\nmachine at end:   {info['end']}\n\n{markdown(rows)}")
    if args.out:
        settings = {k: spec[k] for k in ("model", "dtype", "max_new_tokens", "repeats", "prompt_tokens", "vllm_args")}
        settings["batch"] = args.batch
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"settings": settings, "machine": info, "rows": rows}, indent=2) + "\n")


def _kv(text: str):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


# --------------------------------------------------------------------- workers


def _timed(fn) -> tuple[int, float]:
    start = time.perf_counter()
    tokens = fn()
    return tokens, time.perf_counter() - start


def worker_hf(spec: dict) -> dict:
    from reasoner.config import ModelConfig
    from reasoner.generation import HFGenerator, SamplingParams
    from reasoner.models import load_policy

    t0 = time.perf_counter()
    model, tokenizer = load_policy(ModelConfig(name_or_path=spec["model_dir"], device="cpu", dtype=spec["dtype"]))
    gen = HFGenerator(model, tokenizer, batch_size=len(spec["prompts"]), ignore_eos=True)
    gen.generate(spec["prompts"][:2], SamplingParams(max_new_tokens=8))  # warm-up
    init_s = time.perf_counter() - t0
    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=spec["max_new_tokens"], seed=0)
    runs = []
    for _ in range(spec["repeats"]):
        tokens, secs = _timed(lambda: sum(len(c.token_ids) for r in gen.generate(spec["prompts"], params) for c in r))
        runs.append(tokens / secs)
    return {"init_s": round(init_s, 1), "runs": {"our HF backend (HFGenerator)": runs}}


def worker_vllm(spec: dict) -> dict:
    """Ours and raw LLM.generate on the same engine, alternating."""
    from vllm import SamplingParams as VSamplingParams

    from reasoner.generation import SamplingParams
    from reasoner.generation.vllm import VLLMGenerator

    t0 = time.perf_counter()
    gen = VLLMGenerator(spec["model_dir"], dtype=spec["dtype"], ignore_eos=True, **spec["vllm_args"])
    gen.generate(spec["prompts"][:2], SamplingParams(max_new_tokens=8))  # warm-up
    init_s = time.perf_counter() - t0
    ours = SamplingParams(n=1, temperature=1.0, max_new_tokens=spec["max_new_tokens"])
    raw = VSamplingParams(n=1, temperature=1.0, max_tokens=spec["max_new_tokens"], ignore_eos=True)
    runs = {"our vLLM backend (VLLMGenerator)": [], "raw vLLM (LLM.generate, same engine)": []}
    for _ in range(spec["repeats"]):
        gen.llm.reset_prefix_cache()
        tokens, secs = _timed(lambda: sum(len(c.token_ids) for r in gen.generate(spec["prompts"], ours) for c in r))
        runs["our vLLM backend (VLLMGenerator)"].append(tokens / secs)
        gen.llm.reset_prefix_cache()
        tokens, secs = _timed(lambda: sum(len(o.token_ids) for r in gen.llm.generate(spec["prompts"], raw, use_tqdm=False) for o in r.outputs))
        runs["raw vLLM (LLM.generate, same engine)"].append(tokens / secs)
    return {"init_s": round(init_s, 1), "runs": runs}


def worker_raw_vllm(spec: dict) -> dict:
    """vllm.LLM as a user would write it: vLLM's defaults, only the CPU KV cache size set."""
    from vllm import LLM
    from vllm import SamplingParams as VSamplingParams

    from reasoner.generation.vllm import CPU_KV_CACHE_BYTES, _on_cpu

    kwargs = dict(spec["vllm_args"])
    if _on_cpu() and "gpu_memory_utilization" not in kwargs:
        kwargs.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
    t0 = time.perf_counter()
    llm = LLM(model=spec["model_dir"], dtype=spec["dtype"], seed=0, **kwargs)
    llm.generate(spec["prompts"][:2], VSamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
    init_s = time.perf_counter() - t0
    raw = VSamplingParams(n=1, temperature=1.0, max_tokens=spec["max_new_tokens"], ignore_eos=True)
    runs = []
    for _ in range(spec["repeats"]):
        llm.reset_prefix_cache()
        tokens, secs = _timed(lambda: sum(len(o.token_ids) for r in llm.generate(spec["prompts"], raw, use_tqdm=False) for o in r.outputs))
        runs.append(tokens / secs)
    return {"init_s": round(init_s, 1), "runs": {"raw vLLM (LLM.generate, vLLM defaults)": runs}}


WORKERS = {"hf": worker_hf, "vllm": worker_vllm, "raw-vllm": worker_raw_vllm}


if __name__ == "__main__":
    main()
