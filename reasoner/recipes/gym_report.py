"""docs/results/gym.md from the run directories of `reasoner recipe gym`.

Reads only what the stages wrote (summary.json, metrics.jsonl, results.jsonl, scores.jsonl,
sweep.jsonl): the report can be rebuilt at any time and shows whatever has finished.

Noise rule, used for every "holds / does not hold": a difference of two means counts only when
it exceeds twice its standard error, sqrt(sd_a^2/k_a + sd_b^2/k_b + p_a(1-p_a)/N + p_b(1-p_b)/N)
(k seeds, N held-out problems; the binomial terms are conservative for two methods graded on the
same problems).
"""

from __future__ import annotations

import json
import math
import statistics as st
from dataclasses import dataclass, field
from pathlib import Path

from reasoner.recipes.gym import LABELS, OFFLINE, ONLINE, SEARCH


# --------------------------------------------------------------------------- reading


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@dataclass
class Stat:
    """Accuracy over seeds, with the eval-set size for the binomial error."""

    values: list[float]
    n: int = 0  # held-out problems per value
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return st.mean(self.values)

    @property
    def sd(self) -> float:
        return st.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def binom(self) -> float:
        p = self.mean
        return math.sqrt(p * (1 - p) / self.n) if self.n else 0.0

    def se2(self) -> float:
        return (self.sd ** 2 / len(self.values) if len(self.values) > 1 else 0.0) + self.binom ** 2

    def fmt(self) -> str:
        if not self.values:
            return "–"
        sd = f" ± {100 * self.sd:.1f}" if len(self.values) > 1 else ""
        return f"{100 * self.mean:.1f}{sd}"


def compare(a: Stat, b: Stat) -> tuple[float, float, bool]:
    """(a - b, twice its standard error, whether the difference exceeds that noise)."""
    diff = a.mean - b.mean
    noise = 2 * math.sqrt(a.se2() + b.se2())
    return diff, noise, abs(diff) > noise


class Runs:
    """Accessors over one recipe output directory."""

    def __init__(self, out: Path, seeds: tuple[int, ...]):
        self.out, self.seeds = Path(out), seeds

    def summary(self, name: str) -> dict | None:
        return _json(self.out / name / "summary.json")

    def decode_stat(self, pattern: str, key: str = "accuracy") -> Stat:
        vals, n = [], 0
        for s in self.seeds:
            summ = self.summary(pattern.format(s=s))
            if summ and summ.get(key) is not None:
                vals.append(float(summ[key]))
                n = int(summ.get("problems", 0))
        return Stat(vals, n)

    def online(self, algo: str) -> Stat:
        vals, n, rollouts, wall = [], 0, [], []
        for s in self.seeds:
            summ = self.summary(f"rl-{algo}-s{s}")
            if summ and summ.get("final_eval_accuracy") is not None:
                vals.append(float(summ["final_eval_accuracy"]))
                rollouts.append(summ.get("rollouts", 0))
                wall.append(summ.get("wall_s", 0.0))
                cfg = _json(self.out / f"rl-{algo}-s{s}" / "run.json")
                n = _eval_problems(self.out / f"rl-{algo}-s{s}")
        return Stat(vals, n, {"rollouts": st.mean(rollouts) if rollouts else 0, "wall_s": st.mean(wall) if wall else 0})

    def curve(self, algo: str) -> list[list[tuple[int, int, float]]]:
        """Per seed: (step, rollouts, held-out accuracy) at every evaluation, step 0 = the SFT start."""
        start = self.summary("sft-s0-greedy")
        curves = []
        for s in self.seeds:
            recs = _jsonl(self.out / f"rl-{algo}-s{s}" / "metrics.jsonl")
            pts = [(r["step"], r["rollouts"], r["eval_accuracy"]) for r in recs if "eval_accuracy" in r]
            if pts:
                base = [(0, 0, start["accuracy"])] if start else []
                curves.append(base + pts)
        return curves

    def offline(self, algo: str, round_index: int = -1, name: str | None = None) -> Stat:
        vals, n, wall = [], 0, []
        names = [name] if name else [f"off-{algo}-s{s}" for s in self.seeds]
        for nm in names:
            summ = self.summary(nm)
            rounds = offline_rounds(summ)
            if rounds and len(rounds) > (round_index if round_index >= 0 else -round_index - 1):
                r = rounds[round_index]
                if r.get("eval_accuracy") is not None:
                    vals.append(float(r["eval_accuracy"]))
                    n = int(r.get("eval_problems", 0))
                    wall.append(sum(x.get("wall_s", 0.0) for x in rounds))
        return Stat(vals, n, {"wall_s": st.mean(wall) if wall else 0})


def offline_rounds(summary: dict | None) -> list[dict]:
    """The per-round summaries of an offline run (a one-round run's summary is its own round)."""
    if not summary:
        return []
    return summary.get("rounds") or ([summary] if "eval_accuracy" in summary else [])


def run_config(run_dir: Path) -> dict:
    """A finished job's resolved config.yaml ({} when it has not run)."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _eval_problems(run_dir: Path) -> int:
    return int(run_config(run_dir).get("eval_problems") or 0)


# --------------------------------------------------------------------------- analyses


def step_error_rates(results: list[dict]) -> tuple[list[float], dict]:
    """P(first error at step i | steps < i right) over greedy gym solutions, and the error kinds
    (the organism's misconception vs any other slip)."""
    from reasoner.data import Problem
    from reasoner.tasks.arith import buggy_result, check_steps, parse_prompt, solve

    reached: dict[int, int] = {}
    failed: dict[int, int] = {}
    kinds = {"misconception": 0, "other": 0}
    for rec in results:
        prompt = rec["prompt"].strip()
        problem = Problem(id=rec["id"], prompt=prompt, answer=rec["gold_answer"], source="arith")
        start, ops = parse_prompt(prompt)
        values = solve(start, ops)
        for sample in rec["samples"]:
            steps = [x for x in sample["response"].split("\n") if x.strip()]
            labels = check_steps(problem, steps)
            first = labels.index(False) if False in labels else None
            if first is None and len(labels) < len(ops) + 1:
                first = len(labels)  # stopped early: counts as an error at the missing step
            for i in range(len(ops) + 1):
                if first is not None and i > first:
                    break
                reached[i] = reached.get(i, 0) + 1
                if first == i:
                    failed[i] = failed.get(i, 0) + 1
            if first is not None and first < len(ops) and first < len(steps):
                op, b = ops[first]
                try:
                    got = int(steps[first].split("=")[-1])
                except ValueError:
                    got = None
                bug = buggy_result(values[first], op, b)
                kinds["misconception" if bug is not None and got == bug else "other"] += 1
            elif first is not None:
                kinds["other"] += 1
    rates = [failed.get(i, 0) / reached[i] for i in sorted(reached)]
    return rates, kinds


def prm_f1(runs: Runs, prm: str) -> dict | None:
    """First-error F1 on the test samples at the threshold that maximises it on validation."""
    from reasoner.prm.metrics import best_threshold_f1, prm_metrics

    val = _jsonl(runs.out / f"evalprm-{prm}-validation" / "scores.jsonl")
    test = _jsonl(runs.out / f"evalprm-{prm}-test" / "scores.jsonl")
    if not val or not test:
        return None
    threshold, val_f1 = best_threshold_f1([r["scores"] for r in val], [r["labels"] for r in val])
    if threshold is None:
        return None
    m = prm_metrics([r["scores"] for r in test], [r["labels"] for r in test], threshold)
    oracle = best_threshold_f1([r["scores"] for r in test], [r["labels"] for r in test])[1]
    return {"threshold": threshold, "val_f1": val_f1, "f1": m["first_error_f1"], "oracle_f1": oracle,
            "step_auc": m["step_auc"], "solutions": m["solutions"]}



def value_ranking(runs: Runs) -> dict | None:
    """How OREO's value ranks the 16 sampled completions of each problem (oreo-value-bon):
    the AUC of V(final state) between correct and wrong ones within a problem (pairs of one
    problem only, 0.5 = chance) and across all, the sampled pass@1 they come from, and the
    accuracy of picking the highest-valued one."""
    from reasoner.prm.metrics import auc

    results = _jsonl(runs.out / "oreo-value-bon" / "results.jsonl")
    if not results:
        return None
    pairs = wins = 0.0
    scores, labels = [], []
    for r in results:
        s = [c["score"] for c in r["candidates"]]
        y = [bool(c["correct"]) for c in r["candidates"]]
        mine = auc(s, y)
        if mine is not None:     # weighted by its pairs: the pooled within-problem AUC
            n = sum(y) * (len(y) - sum(y))
            pairs, wins = pairs + n, wins + mine * n
        scores += s
        labels += y
    right = [v for v, y in zip(scores, labels) if y]
    wrong = [v for v, y in zip(scores, labels) if not y]
    return {"auc": wins / pairs if pairs else None, "global_auc": auc(scores, labels),
            "pass1": len(right) / max(1, len(scores)),
            "bon": st.mean(1.0 if r["correct"] else 0.0 for r in results), "problems": len(results),
            "v_right": st.mean(right) if right else None, "v_wrong": st.mean(wrong) if wrong else None}


def sweep_cells(runs: Runs) -> dict[str, dict[int, dict]]:
    cells: dict[str, dict[int, dict]] = {}
    for c in _jsonl(runs.out / "search-sweep" / "sweep.jsonl"):
        cells.setdefault(c["method"], {})[int(c["n"])] = c
    return cells


def first_reach(curves: list[list[tuple[int, int, float]]], target: float, index: int) -> int | None:
    """Smallest step (index 0) or rollouts (index 1) at which the seed-mean accuracy reaches target."""
    if not curves:
        return None
    n = min(len(c) for c in curves)
    for i in range(1, n):
        if st.mean(c[i][2] for c in curves) >= target - 1e-9:
            return curves[0][i][index]
    return None


def mean_curve(curves) -> tuple[list[int], list[int], list[float], list[float]]:
    n = min(len(c) for c in curves)
    steps = [curves[0][i][0] for i in range(n)]
    rollouts = [curves[0][i][1] for i in range(n)]
    means = [st.mean(c[i][2] for c in curves) for i in range(n)]
    sds = [st.stdev([c[i][2] for c in curves]) if len(curves) > 1 else 0.0 for i in range(n)]
    return steps, rollouts, means, sds
