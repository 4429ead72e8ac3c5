"""A sweep's cells as a markdown table and a PNG plot (accuracy vs budget), like OpenR's and
search-and-learn's figures: one line per method, x = budget n, generations, or generated tokens
(per problem, log scale)."""

from __future__ import annotations

from pathlib import Path

PANELS = (("n", "budget n (samples / beams / MCTS rollouts)"),
          ("generations", "generations per problem (sampled sequences)"),
          ("tokens", "generated tokens per problem"))


def _ordered(cells: list[dict]) -> tuple[list[str], list[int], dict]:
    methods = list(dict.fromkeys(c["method"] for c in cells))
    budgets = sorted({c["n"] for c in cells})
    return methods, budgets, {(c["method"], c["n"]): c for c in cells}


def markdown_table(cells: list[dict], title: str = "") -> str:
    """Accuracy per method (rows) and budget (columns), then every cell's spend in long form."""
    methods, budgets, at = _ordered(cells)
    lines = [f"## {title}", ""] if title else []
    lines += ["Accuracy by budget n:", "", "| method | " + " | ".join(f"n={n}" for n in budgets) + " |",
              "|---|" + "---:|" * len(budgets)]
    for m in methods:
        row = [f"{at[(m, n)]['accuracy']:.3f}" if (m, n) in at else "" for n in budgets]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", "Every cell (generations and tokens are means per problem; oracle = some candidate correct):", "",
              "| method | n | accuracy | oracle | generations | tokens | wall s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        for n in budgets:
            c = at.get((m, n))
            if c:
                lines.append(f"| {m} | {n} | {c['accuracy']:.3f} | {c['oracle']:.3f} | {c['generations']:.1f} | "
                             f"{c['tokens']:.0f} | {c['wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(cells: list[dict], path: Path, title: str = "") -> None:
    """Accuracy vs n, vs generations and vs tokens; one line per method (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods, _, _ = _ordered(cells)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(6 * len(PANELS), 4.8), sharey=True)
    markers = "osD^v<>ph*XP"
    for j, m in enumerate(methods):
        mine = sorted((c for c in cells if c["method"] == m), key=lambda c: c["n"])
        style = "--" if j >= 10 else "-"
        for ax, (key, _) in zip(axes, PANELS):
            ax.plot([max(c[key], 1e-9) for c in mine], [c["accuracy"] for c in mine], style,
                    marker=markers[j % len(markers)], label=m, linewidth=1.5, markersize=4)
    for ax, (key, label) in zip(axes, PANELS):
        ax.set_xscale("log", base=2 if key == "n" else 10)
        ax.set_xlabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
