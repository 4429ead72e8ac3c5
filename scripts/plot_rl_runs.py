"""Held-out accuracy vs rollouts of several `reasoner train-rl` runs, one line per label (mean over
the runs given for it, with their range shaded), and a markdown table of the same points.

    python scripts/plot_rl_runs.py --sft 0.295 --out docs/rl/cosine_curves.png \\
        GRPO=runs/rl-grpo15/A,runs/rl-grpo15/A-s1,runs/rl-grpo15/A-s2 RLEP=runs/rl-grpo15/rlep-s0
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def eval_points(run: Path) -> dict[int, float]:
    """rollouts -> eval_accuracy, from a run's metrics.jsonl."""
    points = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "eval_accuracy" in rec:
            points[int(rec["rollouts"])] = float(rec["eval_accuracy"])
    return points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("groups", nargs="+", help="LABEL=run_dir[,run_dir...]")
    ap.add_argument("--sft", type=float, default=None, help="starting accuracy, drawn at 0 rollouts")
    ap.add_argument("--out", required=True, help="png path; the table goes to the same name with .md")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = []
    for group in args.groups:
        label, _, dirs = group.partition("=")
        runs = [eval_points(Path(d)) for d in dirs.split(",")]
        xs = sorted(set.intersection(*(set(r) for r in runs)))
        values = [[r[x] for r in runs] for x in xs]
        if args.sft is not None:
            xs, values = [0] + xs, [[args.sft] * len(runs)] + values
        mean = [statistics.mean(v) for v in values]
        line, = ax.plot(xs, [100 * m for m in mean], marker="o", ms=3, label=f"{label} ({len(runs)} run{'s' * (len(runs) > 1)})")
        if len(runs) > 1:
            ax.fill_between(xs, [100 * min(v) for v in values], [100 * max(v) for v in values], color=line.get_color(), alpha=0.15)
        final = values[-1]
        sd = statistics.stdev(final) if len(final) > 1 else 0.0
        peak = max(mean)
        rows.append(f"| {label} | {len(runs)} | {100 * statistics.mean(final):.1f} ± {100 * sd:.1f} | "
                    f"{100 * peak:.1f} at {xs[mean.index(peak)]:,} | {', '.join(f'{100 * m:.1f}' for m in mean)} |")
    ax.set_xlabel("rollouts")
    ax.set_ylabel("held-out greedy accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    table = ["| runs | seeds | final (mean ± sd) | peak of the mean (at rollouts) | mean at each evaluation |",
             "|---|---|---|---|---|"] + rows
    Path(args.out).with_suffix(".md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
