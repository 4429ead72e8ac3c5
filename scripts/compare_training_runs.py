"""Same seeds, same numbers? Short training runs of two checkouts compared bit for bit.

Runs every training command (SFT, PRM, each online and offline RL algorithm) for ~10 steps on
the tiny model with a baseline checkout and a candidate checkout (each on its own PYTHONPATH,
in its own working directory), then compares metrics.jsonl (every key both write, timing keys
aside), summary.json (likewise, paths and wall times aside) and every weight file of the saved
models with torch.equal. A refactor that claims "results unchanged" should print `identical`
on every line.

    python scripts/compare_training_runs.py --baseline /work/main --candidate . --out /tmp/bitcheck
    python scripts/compare_training_runs.py ... --only grpo,ppo      # a few cases
Baseline runs are cached in OUT/baseline (delete it to rerun them); candidate runs are redone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TINY = ["model.tiny.hidden_size=32", "model.tiny.num_layers=2", "model.tiny.num_heads=2",
        "model.tiny.num_kv_heads=1", "model.tiny.intermediate_size=64", "model.device=cpu"]
TIMING = {"gen_s", "step_s", "tokens_per_s", "wall_s", "samples_per_s"}
RL = [*TINY, "data.num_problems=40", "prompts_per_step=2", "generation.n=4", "generation.max_new_tokens=10",
      "generation.batch_size=16", "batch_size=4", "eval_problems=4", "eval_every=5", "save_every=0", "steps=10",
      "reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum"]
OFFLINE = [*TINY, "batch_size=2", "eval_problems=4", "eval_every=5", "save_every=0"]


def cases(data: Path) -> dict[str, tuple[str, list[str]]]:
    traj, prm, pool = data / "offline.jsonl", data / "prm.jsonl", data / "pool.jsonl"
    return {
        "sft": ("train-sft", [*TINY, "data.num_problems=64", "batch_size=8", "max_steps=10", "log_every=1",
                              "save_every=0", "eval_every=5", "eval_problems=4", "optim.warmup_steps=2"]),
        "sft-accum": ("train-sft", [*TINY, "data.num_problems=40", "batch_size=4", "grad_accum=2", "max_steps=10",
                                    "log_every=2", "save_every=0"]),
        "prm": ("train-prm", [*TINY, f"train_file={prm}", "batch_size=4", "max_steps=10", "log_every=1", "save_every=0"]),
        "prm-implicit": ("train-prm", [*TINY, "prm=implicit", f"train_file={prm}", "batch_size=4", "max_steps=10",
                                       "log_every=1", "save_every=0"]),
        "grpo": ("train-rl", [*RL, "algo=grpo", "algo.beta=0.05", "algo.minibatch_size=4", "algo.num_iterations=2"]),
        "grpo-fullkl": ("train-rl", [*RL, "algo=grpo", "algo.beta=0.05", "algo.kl_estimator=full"]),
        "dapo": ("train-rl", [*RL, "algo=dapo"]),
        "dr_grpo": ("train-rl", [*RL, "algo=dr_grpo"]),
        "rloo": ("train-rl", [*RL, "algo=rloo", "algo.beta=0.05"]),
        "ppo": ("train-rl", [*RL, "algo=ppo", "algo.minibatch_size=4"]),
        "prime": ("train-rl", [*RL, "algo=prime", "algo.accuracy_filter=[0.0,1.0]"]),
        "rlep": ("train-rl", [*RL, "algo=rlep", f"algo.pool_file={pool}", "algo.replay=1", "algo.pool_grow=true"]),
        "oreo": ("train-rl", [*OFFLINE, "algo=oreo", f"train_file={traj}", "steps=10"]),
        "oreo-step": ("train-rl", [*OFFLINE, "algo=oreo", "algo.level=step", "algo.kl_estimator=k3",
                                   f"train_file={traj}", "steps=10"]),
        "rft": ("train-rl", [*OFFLINE, "algo=rft", f"train_file={traj}", "epochs=2"]),
        "dpo": ("train-rl", [*OFFLINE, "algo=dpo", f"train_file={traj}", "epochs=2"]),
        "oreo-rounds": ("train-rl", [*OFFLINE, "algo=oreo", "rounds=2", f"train_file={traj}", "steps=4",
                                     "data.num_problems=3", "generation.n=2", "generation.max_new_tokens=12"]),
    }


def write_data(data: Path, root: Path) -> None:
    """The runs' input files, built without a model (the test helpers of the candidate)."""
    if (data / "done").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    code = f"""
import json, sys
sys.path.insert(0, {str(root)!r})
from pathlib import Path
from tests.offline.helpers import gym_trajectories, write_trajectories
from tests.prm.gym_data import gym_trajectories as prm_rows, write_jsonl
from reasoner import config
from reasoner.tasks import get_task
d = Path({str(data)!r})
write_trajectories(d / "offline.jsonl", gym_trajectories(10))
write_jsonl(d / "prm.jsonl", prm_rows(40, max_ops=3, max_operand=9))
task = get_task("arith")
cfg = config.load("train_rl", ["data.num_problems=40"])
rows = [{{"id": f"{{p.id}}/0", "problem_id": p.id, "prompt": p.prompt, "response": task.format_solution(p),
          "steps": p.solution_steps, "pred_answer": p.answer, "reward": 1.0}} for p in task.load_problems(cfg.data)]
(d / "pool.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=_env(root))
    (data / "done").write_text("ok\n")


def _env(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_case(root: Path, run_dir: Path, command: str, args: list[str]) -> float:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "reasoner", command, *args, f"run_dir={run_dir}"], cwd=root,
                          env=_env(root), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{run_dir}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return time.time() - started


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _rel(x, y) -> float:
    return abs(x - y) / max(abs(x), abs(y), 1e-12)


def compare_dirs(a: Path, b: Path) -> list[str]:
    """Differences between two run dirs (an empty list: identical); the last entry, when there
    are differences in numbers, is the largest relative one over metrics and weights."""
    import torch
    from safetensors.torch import load_file

    out, worst = [], 0.0
    for rel in sorted({p.relative_to(a) for p in a.rglob("metrics.jsonl")}):
        ra, rb = _jsonl(a / rel), _jsonl(b / rel)
        if [r["step"] for r in ra] != [r["step"] for r in rb]:
            out.append(f"{rel}: logged steps differ")
            continue
        added = sorted(set().union(*map(set, rb)) - set().union(*map(set, ra)))
        removed = sorted(set().union(*map(set, ra)) - set().union(*map(set, rb)))
        if added or removed:
            out.append(f"{rel}: keys added {added} removed {removed} (not a difference in numbers)")
        for x, y in zip(ra, rb):
            for k in sorted((set(x) & set(y)) - TIMING):
                if x[k] != y[k]:
                    out.append(f"{rel} step {x['step']}: {k} {x[k]!r} != {y[k]!r}")
                    if isinstance(x[k], (int, float)) and isinstance(y[k], (int, float)):
                        worst = max(worst, _rel(x[k], y[k]))
    for rel in sorted({p.relative_to(a) for p in a.rglob("summary.json")}):
        sa, sb = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
        for k in sorted((set(sa) & set(sb)) - TIMING):
            if k.endswith("_dir") or k in ("rounds", "model"):
                continue
            if sa[k] != sb[k]:
                out.append(f"{rel}: {k} {sa[k]!r} != {sb[k]!r}")
    for rel in sorted({p.relative_to(a) for p in a.rglob("*.safetensors")} - {p.relative_to(a) for p in a.rglob("checkpoints/**/*")}):
        if not (b / rel).is_file():
            out.append(f"{rel}: missing in the candidate")
            continue
        wa, wb = load_file(str(a / rel)), load_file(str(b / rel))
        bad = [k for k in wa if k not in wb or not torch.equal(wa[k], wb[k])]
        if bad or set(wa) != set(wb):
            out.append(f"{rel}: {len(bad)} of {len(wa)} tensors differ (first: {bad[:1]})")
            for k in bad:
                if k in wb:
                    d = (wa[k].double() - wb[k].double()).norm() / wa[k].double().norm().clamp(min=1e-12)
                    worst = max(worst, float(d))
    if worst:
        out.append(f"largest relative difference: {worst:.2e} (a metric's, or a weight tensor's norm of the difference)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, type=Path)
    ap.add_argument("--candidate", default=Path("."), type=Path)
    ap.add_argument("--out", default=Path("/tmp/bitcheck"), type=Path)
    ap.add_argument("--only", default="")
    ap.add_argument("--baseline-only", action="store_true", help="only make the cached baseline runs")
    args = ap.parse_args()
    base, cand = args.baseline.resolve(), args.candidate.resolve()
    data = args.out / "data"
    write_data(data, cand)
    todo = cases(data)
    names = [n for n in todo if not args.only or n in args.only.split(",")]
    failed = 0
    for name in names:
        command, extra = todo[name]
        a, b = args.out / "baseline" / name, args.out / "candidate" / name
        if not (a / "summary.json").is_file():
            run_case(base, a, command, extra)
        if args.baseline_only:
            continue
        secs = run_case(cand, b, command, extra)
        diffs = compare_dirs(a, b)
        numbers = [d for d in diffs if "not a difference in numbers" not in d]
        failed += bool(numbers)
        print(f"{name:14s} {'identical' if not numbers else 'DIFFERENT'}  ({secs:.0f} s)", flush=True)
        for d in diffs[:6] + diffs[-1:] if len(diffs) > 6 else diffs:
            print(f"    {d}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
