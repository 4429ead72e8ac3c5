"""PRM scoring throughput: the one-pass batched scorer vs a per-prefix loop.

The per-prefix loop is how OpenR's reward worker scores a solution: one forward pass per step
prefix (prompt + steps 1..i + tag), reading the last position. `reasoner.scoring` reads every
step's tag in ONE forward pass per solution and batches solutions. Both read the same positions
of the same PRM input, so their scores must agree; the script checks that before timing.

    python scripts/bench_scorer.py --models tiny-arith smollm2-135m --solutions 64 --steps 8 \
        --batch 32 --repeats 2 --out bench_scorer.json

Solutions are gold gym solutions with steps-1 operations + the "Answer:" line (8 steps by
default). Weights do not change the speed, so presets are used as they load (tiny-arith:
random init); `--prm DIR` times a trained PRM directory instead.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def solutions(n: int, steps: int) -> tuple[list[str], list[list[str]]]:
    from reasoner.tasks.arith import generate_problems

    probs = generate_problems(n, seed=0, split="test", min_ops=steps - 1, max_ops=steps - 1, max_operand=9)
    return [p.prompt + "\n" for p in probs], [list(p.solution_steps) for p in probs]


def per_prefix_loop(scorer, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
    """One forward pass per step prefix, batch 1 (OpenR's reward-worker pattern)."""
    from reasoner.prm.losses import step_probability
    from reasoner.prm.model import tag_logits

    device = next(scorer.model.parameters()).device
    out = []
    with torch.inference_mode():
        for prompt, sol in zip(prompts, steps):
            row = []
            for i in range(1, len(sol) + 1):
                enc = scorer.encode(prompt, sol[:i])
                ids = torch.tensor([enc.input_ids], device=device)
                last = torch.tensor([ids.shape[1] - 1], device=device)
                pos, neg = tag_logits(scorer.model, ids, torch.ones_like(ids), torch.zeros(1, dtype=torch.long, device=device),
                                      last, scorer.pos_id, scorer.neg_id)
                row.append(float(step_probability(pos, neg)[0]))
            out.append(row)
    return out


def build_scorer(model_name: str, prm_dir: str | None, batch: int):
    from reasoner.config import ModelConfig
    from reasoner.models import load_policy
    from reasoner.prm.model import PRMSpec, load_prm
    from reasoner.scoring import DiscriminativeScorer

    if prm_dir:
        loaded = load_prm(prm_dir)
        return DiscriminativeScorer(loaded.model, loaded.tokenizer, loaded.spec, batch)
    model, tok = load_policy(ModelConfig(name_or_path=model_name))
    return DiscriminativeScorer(model.requires_grad_(False), tok, PRMSpec(step_separator="\n"), batch)


def timed(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench(model_name: str, prm_dir: str | None, n: int, n_steps: int, batch: int, repeats: int) -> dict:
    prompts, steps = solutions(n, n_steps)
    scorer = build_scorer(model_name, prm_dir, batch)
    one_pass = scorer.score(prompts[:4], steps[:4])
    looped = per_prefix_loop(scorer, prompts[:4], steps[:4])
    diff = max(abs(a - b) for ra, rb in zip(one_pass, looped) for a, b in zip(ra, rb))
    assert diff < 1e-3, f"one-pass and per-prefix scores disagree by {diff}"
    scorer.score(prompts[:batch], steps[:batch])  # warm-up
    t_loop, _ = timed(lambda: per_prefix_loop(scorer, prompts, steps), repeats)
    scorer.batch_size = 1
    t_one, _ = timed(lambda: scorer.score(prompts, steps), repeats)
    scorer.batch_size = batch
    t_batch, _ = timed(lambda: scorer.score(prompts, steps), repeats)
    tokens = sum(len(scorer.encode(p, s).input_ids) for p, s in zip(prompts, steps)) / n
    return {"model": prm_dir or model_name, "solutions": n, "steps": n_steps, "batch": batch,
            "mean_tokens": round(tokens, 1), "max_score_diff": diff,
            "loop_sol_per_s": round(n / t_loop, 2), "one_pass_b1_sol_per_s": round(n / t_one, 2),
            "one_pass_batched_sol_per_s": round(n / t_batch, 2),
            "speedup_batched_vs_loop": round(t_loop / t_batch, 2), "speedup_b1_vs_loop": round(t_loop / t_one, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["tiny-arith"])
    ap.add_argument("--prm", default=None, help="a trained PRM directory (replaces --models)")
    ap.add_argument("--solutions", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = [bench(m, args.prm, args.solutions, args.steps, args.batch, args.repeats)
            for m in ([args.prm] if args.prm else args.models)]
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}
    print("| model | tokens/solution | per-prefix loop sol/s | one-pass b=1 sol/s | one-pass b=%d sol/s | speedup |" % args.batch)
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['mean_tokens']} | {r['loop_sol_per_s']} | {r['one_pass_b1_sol_per_s']} | "
              f"{r['one_pass_batched_sol_per_s']} | {r['speedup_batched_vs_loop']}x |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
