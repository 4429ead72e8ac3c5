"""Statistics and run-dir readers shared by the sections of docs/results/real.md
(scripts/real_model_report.py): Wilson intervals, paired differences, and what a run dir holds."""

from __future__ import annotations

import json
import math
from pathlib import Path

Z = 1.959964


def wilson(k: float, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k/n."""
    if n == 0:
        return 0.0, 0.0
    p = k / n
    den = 1 + Z * Z / n
    mid = (p + Z * Z / (2 * n)) / den
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def paired_delta(base: dict[str, float], new: dict[str, float]) -> tuple[float, float, float, int]:
    """(mean difference, CI low, CI high, n) over the problems both runs answered."""
    ids = sorted(set(base) & set(new))
    n = len(ids)
    if n == 0:
        return 0.0, 0.0, 0.0, 0
    d = [new[i] - base[i] for i in ids]
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / max(1, n - 1)
    half = Z * math.sqrt(var / n)
    return mean, mean - half, mean + half, n


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def acc_cell(scores: dict[str, float]) -> str:
    n = len(scores)
    k = sum(scores.values())
    lo, hi = wilson(k, n)
    return f"{pct(k / n if n else 0)} [{pct(lo)}, {pct(hi)}]"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def per_problem(run_dir: Path) -> dict[str, float]:
    """problem id -> correctness of a decode run (greedy pass@1, or the search method's answer)."""
    out = {}
    for r in read_jsonl(run_dir / "results.jsonl"):
        out[r["id"]] = float(r["correct"]) if "correct" in r else float(r["pass@1"])
    return out


def wall_s(runs: Path, name: str) -> int | None:
    path = runs / "logs" / f"{name}.wall"
    if not path.exists():
        return None
    return sum(int(x) for x in path.read_text().split())


def fmt_wall(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min"


def commands(runs: Path) -> dict[str, str]:
    path = runs / "commands.tsv"
    out = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, cmd = line.partition("\t")
            out.setdefault(name, cmd)
    return out


def run_config(run: Path) -> dict | None:
    """A run's config.yaml (None: not there)."""
    import yaml

    path = run / "config.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def verdict(lo: float, hi: float) -> str:
    """Whether a difference's 95% interval excludes 0."""
    return ("the difference exceeds the noise" if lo > 0 or hi < 0 else
            "the interval of the difference includes 0: inside the noise of these problems")
