"""Generated tokens/s of step-level beam search vs plain batched sampling at the same width.

Both decode the same problems with the same model and the HF backend: sampling draws W full
solutions per problem in one call; beam search (reasoner.search, N = W beams, width M) generates
one step per round and scores every candidate with a scorer between rounds. tok/s = generated
tokens / wall seconds; for beam search the time inside generate() and inside the scorer is also
reported, so the cost of re-sending prefixes and of scoring can be told apart. Example:

    python scripts/bench_search.py --model runs/gym-sft/final --data arith --problems 32 \\
        --widths 4 16 --prm runs/prm-shepherd/final --out bench_search.json

Without --prm the scorer is a value model on a copy of the policy with an untrained (zero) head:
a real forward pass per candidate, but uninformative scores (every tie goes to the first beam).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoner import config  # noqa: E402
from reasoner.generation.base import SamplingParams  # noqa: E402
from reasoner.search import SEARCH_METHODS, resolve_params  # noqa: E402
from reasoner.stages.decode import _setup  # noqa: E402


class Timed:
    """Wraps a generator or scorer and adds up the seconds spent in its one method."""

    def __init__(self, inner, method: str):
        self.inner, self.method, self.seconds = inner, method, 0.0

    def __getattr__(self, name):
        if name != self.method:
            return getattr(self.inner, name)

        def call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return getattr(self.inner, name)(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        return call


def untrained_value_scorer(cfg, generator):
    from reasoner.models import load_value_model
    from reasoner.scoring import ValueScorer

    value = load_value_model(cfg.model, generator.model).requires_grad_(False).eval()
    return ValueScorer(value, generator.tokenizer, "\n", batch_size=cfg.scorer.batch_size)


class Breakdown:
    """Seconds and calls inside the HF generator's decode steps, prefills and K/V stores
    (`--breakdown`): where beam search's time goes next to sampling's."""

    PARTS = {"_decode": "decode", "_prefill": "prefill", "_remember": "store"}

    def __init__(self, generator):
        self.seconds, self.calls = {}, {}
        for method, label in self.PARTS.items():
            if hasattr(generator, method):
                setattr(generator, method, self._wrap(getattr(generator, method), label))

    def _wrap(self, fn, label):
        def call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t
                self.calls[label] = self.calls.get(label, 0) + 1
        return call

    def take(self) -> dict:
        out = {f"{k}_s": round(v, 3) for k, v in self.seconds.items()}
        out["decode_steps"] = self.calls.get("decode", 0)
        self.seconds, self.calls = {}, {}
        return out


def forget(generator, scorer) -> None:
    """Empty the generator's prefix cache and the PRM's K/V store, so a timed run pays for every
    prefill a first visit to these problems would (repeats would otherwise hit earlier runs' caches)."""
    for cache in (getattr(generator, "_prefix", None), getattr(scorer, "_paths", None)):
        if cache is not None:
            cache.clear()


def bench(overrides: list[str], widths: list[int], beam_width: int, temperature: float, repeats: int,
          warm: bool = False, breakdown: bool = False) -> list[dict]:
    cfg = config.load("decode", overrides)
    problems, prompts, generator, scorer, task, _ = _setup(cfg)
    if scorer is None:
        scorer = untrained_value_scorer(cfg, generator)
    parts = Breakdown(generator) if breakdown else None
    rows = []
    for w in widths:
        params = resolve_params("beam", {"width": min(beam_width, w), "temperature": temperature}, cfg.generation, cfg.scorer)
        best: dict[str, dict] = {}
        for rep in range(repeats):
            if not warm:
                forget(generator, scorer)
            t = time.perf_counter()
            outs = generator.generate(prompts, SamplingParams(n=w, temperature=temperature, top_p=params["top_p"],
                                                              max_new_tokens=params["max_new_tokens"], seed=rep))
            wall = time.perf_counter() - t
            toks = sum(len(c.token_ids) for o in outs for c in o)
            split = parts.take() if parts else {}
            if "sample" not in best or toks / wall > best["sample"]["tok_s"]:
                best["sample"] = {"tokens": toks, "wall_s": wall, "tok_s": toks / wall, "parts": split}
            if not warm:
                forget(generator, scorer)
            gen, sc = Timed(generator, "generate"), Timed(scorer, "score")
            t = time.perf_counter()
            results = SEARCH_METHODS["beam"](prompts, gen, sc, {**params, "seed": rep}, task, w)
            wall = time.perf_counter() - t
            toks = sum(r.generated_tokens for r in results)
            split = parts.take() if parts else {}
            if "beam" not in best or toks / wall > best["beam"]["tok_s"]:
                best["beam"] = {"tokens": toks, "wall_s": wall, "tok_s": toks / wall, "generate_s": gen.seconds,
                                "score_s": sc.seconds, "gen_tok_s": toks / gen.seconds,
                                "sequences": sum(r.generations for r in results), "parts": split}
        s, b = best["sample"], best["beam"]
        row = {"model": cfg.model.name_or_path, "data": cfg.data.name, "problems": len(problems), "width": w,
               "beam_width": params["width"], "sample_tok_s": round(s["tok_s"], 1), "beam_tok_s": round(b["tok_s"], 1),
               "beam_gen_tok_s": round(b["gen_tok_s"], 1), "ratio": round(b["tok_s"] / s["tok_s"], 3),
               "gen_ratio": round(b["gen_tok_s"] / s["tok_s"], 3), "sample_tokens": s["tokens"], "beam_tokens": b["tokens"],
               "beam_sequences": b["sequences"], "beam_generate_s": round(b["generate_s"], 2),
               "beam_score_s": round(b["score_s"], 2), "beam_wall_s": round(b["wall_s"], 2)}
        if breakdown:
            row.update({"sample_wall_s": round(s["wall_s"], 3), "sample_parts": s["parts"], "beam_parts": b["parts"]})
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/gym-sft/final")
    ap.add_argument("--data", default="arith", help="a task name (arith, gsm8k, math500) or a data file")
    ap.add_argument("--data-path", default=None)
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--beam-width", type=int, default=4, help="M: expansions per kept beam")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass (HF backend)")
    ap.add_argument("--prm", default=None, help="a PRM directory (scorer.kind=prm); default: untrained value head")
    ap.add_argument("--repeats", type=int, default=2, help="fastest of this many runs per cell")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--warm", action="store_true", help="keep caches between timed runs (default: emptied before each)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also report seconds in decode steps, prefills and K/V stores, and the decode-step count")
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*", help="extra decode config overrides")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = ["data=jsonl", f"data.path={args.data}"] if Path(args.data).suffix else [f"data={args.data}"]
    if args.data_path:
        data.append(f"data.path={args.data_path}")
    model = [f"model={args.model}"] if args.model in ("tiny-arith", "smollm2-135m") else [f"model.name_or_path={args.model}"]
    if args.data == "arith":  # the gym generates num_problems; file sources take data.limit only
        data.append(f"data.num_problems={args.problems}")
    overrides = model + data + [f"data.limit={args.problems}", "data.split=test",
                                f"generation.max_new_tokens={args.max_new_tokens}", f"generation.batch_size={args.batch_size}",
                                "model.device=cpu"] + (["scorer.kind=prm", f"scorer.path={args.prm}"] if args.prm else [])
    rows = bench(overrides + args.overrides, args.widths, args.beam_width, args.temperature, args.repeats, args.warm,
                 args.breakdown)
    meta = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "load_avg": os.getloadavg()}
    if args.out:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
