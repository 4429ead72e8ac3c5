"""docs/results/real.md from the run dirs of scripts/real_model.sh: figures, 95% CIs, wall times,
commands, and learning curves (PNG) from each training run's metrics.jsonl.

    python scripts/real_model_report.py --runs /work/runs/real --out docs/results/real.md

Accuracies get a Wilson 95% interval; a trained-vs-base delta on the same problems gets the
normal-approximation 95% interval of the mean per-problem difference (paired: both models answer
the same problems, so the problem-difficulty variance cancels). Sweep rows are also re-graded
with the last-number fallback (`data.answer_fallback=true`) and show how often the answer tag
was written at all, to tell "wrong" from "format not followed".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_model_search import offline_section, prm_section  # noqa: E402
from real_model_stats import (acc_cell, commands, fmt_wall, paired_delta, pct, per_problem, read_jsonl,  # noqa: E402
                              run_config, verdict, wall_s)

TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.S)


# --------------------------------------------------------------------------- sweep


def sweep_rows(runs: Path) -> list[dict]:
    """One row per swept task: strict accuracy, tag rate, fallback accuracy, truncation."""
    rows = []
    for d in sorted((runs / "sweep").glob("*/summary.json")):
        run = d.parent
        stats = response_stats(run, lambda text: bool(TAG_RE.search(text)))
        fallback = int(sum(lenient(run).values()))
        n = stats["n"]
        rows.append({"task": run.name, "n": n, "strict": stats["correct"] / n, "fallback": fallback / n,
                     "tagged": stats["marked"], "truncated": stats["truncated"], "mean_tokens": stats["mean_tokens"],
                     "fallback_k": fallback, "strict_k": stats["correct"]})
    return rows


def response_stats(run: Path, marked) -> dict:
    """Over a decode run's greedy responses: how many are right, and the share `marked(text)`
    accepts, the share stopped by the token budget, the mean number of new tokens."""
    samples = [r["samples"][0] for r in read_jsonl(run / "results.jsonl")]
    k = max(1, len(samples))
    return {"n": len(samples), "correct": sum(bool(s["correct"]) for s in samples),
            "marked": sum(bool(marked(s["response"])) for s in samples) / k,
            "truncated": sum(s.get("finish_reason") == "length" for s in samples) / k,
            "mean_tokens": sum(s.get("num_tokens", 0) for s in samples) / k}


def sweep_table(rows: list[dict]) -> str:
    lines = ["| task | n | accuracy (the default grading: tag or committed answer) [95% CI] | with last-number fallback | tag written | truncated at 256 | mean tokens |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lo, hi = wilson(r["strict_k"], r["n"])
        lines.append(f"| {r['task']} | {r['n']} | {pct(r['strict'])} [{pct(lo)}, {pct(hi)}] | {pct(r['fallback'])} | "
                     f"{pct(r['tagged'])} | {pct(r['truncated'])} | {r['mean_tokens']:.0f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- trained vs base


def lenient(run_dir: Path) -> dict[str, float]:
    """problem id -> correctness of a greedy decode re-graded with the last-number fallback."""
    from reasoner.config import DataConfig
    from reasoner.tasks import get_task

    cfg = run_config(run_dir)
    data = DataConfig(**{k: v for k, v in cfg["data"].items() if k in DataConfig.__dataclass_fields__})
    task = get_task(data.name)
    problems = {p.id: p for p in task.load_problems(data)}
    loose = task.derive(fallback_last_number=True)
    return {r["id"]: float(loose.grade(r["samples"][0]["response"], problems[r["id"]], 5.0).correct)
            for r in read_jsonl(run_dir / "results.jsonl")}


def compare_rows(runs: Path, pairs: list[tuple[str, str, str]]) -> str:
    """| what | base [CI] | trained [CI] | paired delta [CI] | for (label, base run, trained run),
    each pair twice: the default grading, and re-graded with the last-number fallback."""
    lines = ["| held-out test problems | grading | base model [95% CI] | trained [95% CI] | difference, paired [95% CI] | n |",
             "|---|---|---:|---:|---:|---:|"]
    for label, base_name, new_name in pairs:
        b, t = runs / base_name, runs / new_name
        if not (b / "results.jsonl").exists() or not (t / "results.jsonl").exists():
            continue
        for grading, read in (("default (committed answer)", per_problem), ("last-number fallback", lenient)):
            lines.append(_compare_line(label, grading, read(b), read(t)))
    return "\n".join(lines)


def _compare_line(label: str, grading: str, base: dict, new: dict) -> str:
    d, lo, hi, n = paired_delta(base, new)
    return f"| {label} | {grading} | {acc_cell(base)} | {acc_cell(new)} | {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | {n} |"


def curve(run: Path) -> list[tuple[int, float]]:
    """(step, held-out greedy accuracy) from a train-rl run's metrics.jsonl (step 0 = the start)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [(r["step"], r["eval_accuracy"]) for r in read_jsonl(path) if "eval_accuracy" in r]


def curve_figure(points: list[tuple[int, float]], out: Path, title: str) -> str | None:
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("held-out greedy accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out.name


def grpo_setting(run: Path) -> str:
    """One sentence with the GRPO run's settings, read from its config.yaml."""
    c = run_config(run)
    if c is None:
        return ""
    lora, gen, reward = c["model"]["lora"], c["generation"], c["reward"]
    rewards = ", ".join(reward.get("functions") or []) or "the verifier (the task's score_answer)"
    return (f"LoRA r={lora['r']} (alpha {lora['alpha']}) on `{c['model']['name_or_path']}` ({c['model']['dtype']}), "
            f"{c['steps']} steps x {c['prompts_per_step']} prompts x {gen['n']} samples at temperature "
            f"{gen['temperature']}, {gen['max_new_tokens']} new tokens, lr {c['optim']['lr']}, reward: {rewards}. "
            "Fixed before the run (no search); the task was chosen on the validation split above. Both models "
            "decode the same test problems greedily with the same token budget.")


def sft_setting(run: Path) -> str:
    """One sentence with the SFT run's settings, read from its config.yaml and summary.json."""
    c = run_config(run)
    if c is None:
        return ""
    lora, optim = c["model"]["lora"], c["optim"]
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    loss = summary.get("final_loss", summary.get("loss"))
    loss_text = f", final training loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
    return (f"LoRA r={lora['r']} (alpha {lora['alpha']}) on `{c['model']['name_or_path']}` ({c['model']['dtype']}), "
            f"the first {c['data']['limit']} GSM8K training solutions (calculator notes removed, one step per line, "
            f"then `Answer: n`), {c['epochs']} epoch(s), batch {c['batch_size']} x {c['grad_accum']}, lr {optim['lr']} "
            f"({optim['schedule']}, {optim['warmup_steps']} warm-up steps){loss_text}. Fixed before the run (no search): "
            "the lr of the GRPO run above, the usual LoRA range. Both models decode the same first GSM8K test "
            "problems greedily with the same token budget.")


def sft_section(runs: Path) -> list[str]:
    """LoRA SFT on GSM8K: base vs SFT on the same test problems (empty without those runs)."""
    if not (runs / "test-sft-gsm8k" / "results.jsonl").exists():
        return []
    base, new = per_problem(runs / "test-base-gsm8k"), per_problem(runs / "test-sft-gsm8k")
    d, lo, hi, n = paired_delta(base, new)
    return ["## LoRA SFT on GSM8K", "", sft_setting(runs / "sft-gsm8k"), "",
            compare_rows(runs, [("GSM8K test", "test-base-gsm8k", "test-sft-gsm8k")]), "",
            f"{100 * d:+.1f} points on {n} problems: {verdict(lo, hi)}. What the training changed, from the same responses:", "",
            "| model | writes the `Answer:` line | stopped by the token budget | mean new tokens |", "|---|---:|---:|---:|",
            format_row("base", runs / "test-base-gsm8k"), format_row("trained", runs / "test-sft-gsm8k"), ""]


def format_row(label: str, run: Path) -> str:
    """How often greedy responses commit to the trained answer line, run out of tokens, and their length."""
    stats = response_stats(run, lambda text: "Answer:" in text)
    return f"| {label} | {pct(stats['marked'])}% | {pct(stats['truncated'])}% | {stats['mean_tokens']:.0f} |"


def grpo_section(runs: Path, out: Path) -> list[str]:
    """LoRA GRPO: base vs trained on the task and the transfer task, the curve (empty without the run)."""
    if not (runs / "grpo").is_dir():
        return []
    lines = ["## LoRA GRPO", "", grpo_setting(runs / "grpo"), "",
             compare_rows(runs, [("trained task", "test-base-task", "test-grpo-task"),
                                 ("transfer task (not trained on)", "test-base-transfer", "test-grpo-transfer")]), ""]
    points = curve(runs / "grpo")
    split = (run_config(runs / "grpo") or {}).get("eval_split", "test")
    base = runs / "test-base-task" / "results.jsonl"
    if points and split == "test" and base.exists():   # step 0: the base model on the same first 100 test problems
        first = read_jsonl(base)[:100]
        points = [(0, sum(float(r["samples"][0]["correct"]) for r in first) / max(1, len(first)))] + points
    fig = curve_figure(points, out.parent / "real_figures" / "real_grpo.png", "LoRA GRPO, SmolLM2-135M")
    if fig:
        where = ("first 100 test problems" if split == "test" else
                 "first 100 validation problems; the test problems were decoded once, at the end")
        lines += [f"Greedy accuracy during training ({where}):", "",
                  f"![GRPO learning curve](real_figures/{fig})", ""]
    return lines


def sweep_section(runs: Path) -> list[str]:
    rows = sweep_rows(runs)
    if not rows:
        return []
    return ["## Which tasks: base rates of the untrained model", "",
            "Greedy, reasoning-gym validation split, the default grading (the `<answer>` tag, or a committed "
            "`Answer: x` / \"the answer is x\"; the model never wrote the tag). The last-number column re-grades the "
            "same responses taking the last number when nothing is committed, to tell wrong answers from answers "
            "never committed to.", "", sweep_table(rows), ""]


NOT_YET = ["## Not here yet", "",
           "The GPU variant of issue #14 (scripts/real_model_gpu.sh) was not run: no GPU was lent. "
           "docs/reasoning_gym.md (\"Lessons\") has what an earlier GRPO attempt with a format reward taught, and the "
           "division quirk of reasoning-gym's basic_arithmetic that the task settings avoid.", ""]
GENERATED = ["## Which tasks: base rates of the untrained model", "## LoRA GRPO", "## LoRA SFT on GSM8K",
             "## Shepherd PRM on SmolLM2: best-of-n vs majority vote", "## OREO vs RFT on SmolLM2"]
NOT_KEPT = ("## Not here yet", "## Commands")


def sections_of(text: str) -> dict[str, list[str]]:
    """A page's '## ' sections by heading, each its lines (heading included)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line
            out[current] = []
        if current is not None:
            out[current].append(line)
    return out


def command_rows(runs: Path) -> dict[str, str]:
    """run name -> its row of the commands table."""
    return {name: f"| {name} | {fmt_wall(wall_s(runs, name))} | `{cmd}` |"
            for name, cmd in commands(runs).items() if not name.startswith("sweep-")}


def page(runs: Path, out: Path) -> str:
    """The results page: the base-rate sweep, LoRA GRPO (trained task and a transfer task, the curve),
    LoRA SFT on GSM8K, the Shepherd PRM's best-of-n vs majority vote, OREO vs RFT, every command. A section whose runs are not under `runs` is kept from the page
    as it was at `out` (its runs came from an earlier invocation), as are their command rows."""
    old = sections_of(out.read_text(encoding="utf-8")) if out.is_file() else {}
    built = [sweep_section(runs), grpo_section(runs, out), sft_section(runs), prm_section(runs), offline_section(runs)]
    kept = [h for h, b in zip(GENERATED, built) if not b and h in old]
    body: list[str] = []
    for heading, lines in zip(GENERATED, built):
        body += lines or old.get(heading, [])
    for heading, lines in old.items():   # hand-written sections (e.g. earlier runs) stay, in their order
        if heading not in GENERATED and heading not in NOT_KEPT:
            body += lines
    kept_note = (f" Kept from the page as it was (their runs are not under `{runs}`): "
                 + ", ".join(f"\"{h[3:]}\"" for h in kept) + "." if kept else "")
    lines = ["# SmolLM2-135M-Instruct trained by reasoner (CPU)", "",
             f"Generated by `python scripts/real_model_report.py --runs {runs} --out {out}` from the runs of "
             "`scripts/real_model.sh` (2 CPU cores, shared with other jobs while these ran; bf16 weights: "
             "docs/benchmarks.md, \"bf16 on this CPU\"). Intervals are 95%: Wilson for an accuracy, paired normal "
             f"approximation for a difference on the same problems.{kept_note}", ""]
    lines += body + NOT_YET
    rows = {}
    for line in old.get("## Commands", []):
        if line.startswith("| ") and not line.startswith("| run |"):
            rows[line.split("|")[1].strip()] = line
    rows.update(command_rows(runs))
    cmds = commands(runs)
    lines += ["## Commands", "", "| run | wall | command |", "|---|---|---|", *rows.values()]
    lines += ["", "Typed in a shell, a list value keeps its quotes: `'data.task_config.operators=[\"+\",\"-\",\"*\"]'`.", ""]
    sweep_cmd = next((c for n, c in cmds.items() if n.startswith("sweep-")), "")
    if sweep_cmd:
        lines += ["Sweep rows: `" + sweep_cmd + "` and the same per task (scripts/real_model.sh, SWEEP_TASKS / "
                  "SWEEP_VARIANTS).", ""]
    else:
        lines += [line for line in old.get("## Commands", []) if line.startswith("Sweep rows:")] + [""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None, help="write the page here (else print the sweep table)")
    args = ap.parse_args()
    if args.out is None:
        print(sweep_table(sweep_rows(args.runs)))
        return
    text = page(args.runs, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
