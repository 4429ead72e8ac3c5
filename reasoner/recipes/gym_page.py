"""Render docs/results/gym.md (table, claims, figures) from a recipe's runs (`gym_report`)."""

from __future__ import annotations

import statistics as st
from pathlib import Path

from reasoner.recipes.gym import LABELS, OFFLINE, ONLINE, SEARCH
from reasoner.recipes.gym_diagnosis import diagnosis_section
from reasoner.recipes.gym_report import (Runs, Stat, _jsonl, compare, first_reach, mean_curve, offline_rounds,
                                         prm_f1, step_error_rates, sweep_cells, value_ranking)

ALGO_NAMES = {"grpo": "GRPO", "dapo": "DAPO", "dr_grpo": "Dr. GRPO", "rloo": "RLOO", "ppo": "PPO",
              "prime": "PRIME", "rlep": "RLEP", "rft": "RFT", "dpo": "DPO", "oreo": "OREO"}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _verdict(ok: bool | None) -> str:
    return {True: "**holds**", False: "does not hold", None: "not measured"}[ok]


class Page:
    """Collects the sections of the page; `claims` is kept for the summary at the top."""

    def __init__(self, runs: Runs, size_name: str, command: str, wall_s: float | None, figures_dir: Path):
        self.runs, self.size_name, self.command, self.wall_s = runs, size_name, command, wall_s
        self.figures_dir = figures_dir
        self.lines: list[str] = []
        self.claims: list[tuple[str, str, str, bool | None]] = []  # (claim, paper, ours, holds)
        self.sft = runs.decode_stat("sft-s{s}-greedy")
        self.start = runs.decode_stat("sft-s0-greedy").__class__(
            [runs.summary("sft-s0-greedy")["accuracy"]] if runs.summary("sft-s0-greedy") else [],
            int((runs.summary("sft-s0-greedy") or {}).get("problems", 0)))

    # ------------------------------------------------------------------ table

    def table(self) -> list[str]:
        r = self.runs
        rows = ["| method | held-out pass@1 (%) | maj@16 / pass@16 (%) | budget spent | wall (s) | seeds |",
                "|---|---|---|---|---|---|"]
        sampled = r.decode_stat("sft-s{s}-sampled")
        maj = r.decode_stat("sft-s{s}-sampled", f"maj@16")
        pk = r.decode_stat("sft-s{s}-sampled", f"pass@16")
        sft_wall = [(r.summary(f"sft-s{s}") or {}).get("wall_s") for s in r.seeds]
        rows.append(f"| SFT, greedy | {self.sft.fmt()} | – | – | {_mean_wall(sft_wall)} | {len(self.sft.values)} |")
        rows.append(f"| SFT, sampled T=1 | {sampled.fmt()} | {maj.fmt()} / {pk.fmt()} | 16 samples | – | {len(sampled.values)} |")
        longer = r.decode_stat("sft-s{s}-longer")
        rows.append(f"| SFT, greedy, longer chains (4-5 ops, not trained on) | {longer.fmt()} | – | – | – | {len(longer.values)} |")
        for algo in ONLINE:
            s = r.online(algo)
            if s.values:
                rows.append(f"| {ALGO_NAMES[algo]} (online, from SFT seed 0) | {s.fmt()} | – | "
                            f"{s.extra['rollouts']:.0f} rollouts | {s.extra['wall_s']:.0f} | {len(s.values)} |")
        for algo in OFFLINE:
            s = r.offline(algo)
            if s.values:
                rows.append(f"| {ALGO_NAMES[algo]} (offline, SFT-seed-0 samples) | {s.fmt()} | – | "
                            f"{_offline_data(r)} | {s.extra['wall_s']:.0f} | {len(s.values)} |")
        it = r.summary("off-oreo-iterative")
        if it:
            for i, rd in enumerate(offline_rounds(it)):
                rows.append(f"| OREO iterative, round {i + 1} | {_pct(rd.get('eval_accuracy'))} | – | – | {rd.get('wall_s', 0):.0f} | 1 |")
        cells = sweep_cells(r)
        for method in SEARCH:
            if method in cells:
                top = max(cells[method])
                c = cells[method][top]
                rows.append(f"| {method} @ n={top} (search, PRM = exact-label PRM) | {_pct(c['accuracy'])} | – | "
                            f"{c['tokens']:.0f} tokens/problem | {c.get('wall_s', 0):.0f} | 1 |")
        g, v = r.summary("oreo-greedy"), r.summary("oreo-value-beam")
        if g:
            rows.append(f"| OREO policy, greedy | {_pct(g['accuracy'])} | – | {g.get('generated_tokens', 0) / max(1, g['problems']):.0f} tokens/problem | {g.get('wall_s', 0):.0f} | 1 |")
        if v:
            rows.append(f"| OREO policy + value-guided beam (B=4) | {_pct(v['accuracy'])} | – | "
                        f"{v.get('generated_tokens', 0) / max(1, v['problems']):.0f} tokens/problem | {v.get('wall_s', 0):.0f} | 1 |")
        return rows

    # ------------------------------------------------------------------ claims

    def claim(self, text: str, paper: str, ours: str, holds: bool | None) -> None:
        self.claims.append((text, paper, ours, holds))

    def check_claims(self) -> None:
        r = self.runs
        start = self.start
        grpo = r.online("grpo")
        if grpo.values and start.values:
            d, noise, sig = compare(grpo, start)
            self.claim("GRPO >= SFT + 15 points", "DeepSeekMath / R1-style RLVR",
                       f"{grpo.fmt()} vs {start.fmt()}: {100 * d:+.1f} (noise ±{100 * noise:.1f})",
                       d >= 0.15 and sig)
        gcurves, pcurves, rcurves = r.curve("grpo"), r.curve("prime"), r.curve("rlep")
        if gcurves and pcurves:
            target = grpo.mean
            reach = first_reach(pcurves, target, 1)
            total = gcurves[0][-1][1]
            ours = (f"PRIME's mean reaches GRPO's final {_pct(target)} at {reach} rollouts vs GRPO's {total} "
                    f"({reach / total:.2f}x)") if reach else f"PRIME's mean never reaches GRPO's final {_pct(target)}"
            self.claim("PRIME reaches GRPO's final accuracy with <= 1/2 of its rollouts", "2.5x sample efficiency",
                       ours, bool(reach) and reach <= total / 2)
        if gcurves and rcurves:
            steps, _, means, _ = mean_curve(gcurves)
            peak = max(means)
            peak_step = steps[means.index(peak)]
            reach = first_reach(rcurves, peak, 0)
            ours = (f"RLEP's mean reaches GRPO's peak {_pct(peak)} (step {peak_step}) at step {reach}"
                    if reach else f"RLEP's mean never reaches GRPO's peak {_pct(peak)}")
            self.claim("RLEP reaches GRPO's peak in <= 0.6x the steps", "step 135 vs 380",
                       ours, bool(reach) and peak_step > 0 and reach <= 0.6 * peak_step)
        oreo, rft, dpo = r.offline("oreo"), r.offline("rft"), r.offline("dpo")
        if oreo.values and rft.values and start.values:
            d1, n1, s1 = compare(oreo, rft)
            d2, n2, s2 = compare(rft, start)
            self.claim("OREO > RFT > SFT", "77.3 / 74.9 / 73.5",
                       f"{oreo.fmt()} / {rft.fmt()} / {start.fmt()}: OREO-RFT {100 * d1:+.1f} (±{100 * n1:.1f}), "
                       f"RFT-SFT {100 * d2:+.1f} (±{100 * n2:.1f})", d1 > 0 and s1 and d2 > 0 and s2)
        if dpo.values and start.values:
            d, n, s = compare(dpo, start)
            self.claim("DPO > SFT", "74.4 vs 73.5", f"{dpo.fmt()} vs {start.fmt()}: {100 * d:+.1f} (±{100 * n:.1f})",
                       d > 0 and s)
        it = r.summary("off-oreo-iterative")
        rounds = offline_rounds(it)
        if len(rounds) >= 2 and all(x.get("eval_accuracy") is not None for x in rounds):
            n = int(rounds[0].get("eval_problems", 0))
            first, last = Stat([rounds[0]["eval_accuracy"]], n), Stat([rounds[-1]["eval_accuracy"]], n)
            d, noise, s = compare(last, first)
            self.claim("iterative OREO improves over its first round", "GSM8K +0.9 / +0.7 over rounds",
                       " -> ".join(_pct(x["eval_accuracy"]) for x in rounds) + f" ({100 * d:+.1f}, ±{100 * noise:.1f})",
                       d > 0 and s)
        g, v = r.summary("oreo-greedy"), r.summary("oreo-value-beam")
        if g and v:
            rel = (v["accuracy"] - g["accuracy"]) / g["accuracy"] if g["accuracy"] else 0.0
            d, noise, s = compare(Stat([v["accuracy"]], v["problems"]), Stat([g["accuracy"]], g["problems"]))
            self.claim("OREO value-guided beam >= +10% relative over greedy", "+11.4% (B = 7)",
                       f"{_pct(v['accuracy'])} vs {_pct(g['accuracy'])}: {100 * rel:+.1f}% relative (±{100 * noise:.1f} points)",
                       rel >= 0.10 and s)
        self._search_claims()
        self._prm_claims()

    def _search_claims(self) -> None:
        cells = sweep_cells(self.runs)
        if "majority" in cells and "best_of_n" in cells:
            top = max(set(cells["majority"]) & set(cells["best_of_n"]))
            maj, bon = cells["majority"][top], cells["best_of_n"][top]
            n = int(maj["problems"])
            d, noise, s = compare(Stat([bon["accuracy"]], n), Stat([maj["accuracy"]], n))
            self.claim("PRM-guided search beats majority at equal generated tokens", "search-and-learn, OpenR",
                       f"best-of-{top} {_pct(bon['accuracy'])} vs majority@{top} {_pct(maj['accuracy'])} on the same samples "
                       f"({100 * d:+.1f}, ±{100 * noise:.1f})", d > 0 and s)
        if "best_of_n" in cells:
            top = max(cells["best_of_n"])
            bon = cells["best_of_n"][top]
            n = int(bon["problems"])
            parts, ok = [], []
            for m in ("beam", "dvts"):
                if top in cells.get(m, {}):
                    c = cells[m][top]
                    d, noise, s = compare(Stat([c["accuracy"]], n), Stat([bon["accuracy"]], n))
                    parts.append(f"{m} {_pct(c['accuracy'])} ({c['tokens']:.0f} tok)")
                    ok.append(d > 0 and s)
            if parts:
                self.claim(f"beam / DVTS beat best-of-N at the largest budget (n={top})", "search-and-learn",
                           ", ".join(parts) + f" vs best-of-N {_pct(bon['accuracy'])} ({bon['tokens']:.0f} tok)",
                           all(ok) if ok else None)

    def _prm_claims(self) -> None:
        exact = prm_f1(self.runs, "truth")
        if exact is None:
            return
        for label, name in (("shepherd", "Math-Shepherd"), ("omegaprm", "OmegaPRM")):
            f = prm_f1(self.runs, label)
            if f is not None and exact["f1"]:
                ratio = f["f1"] / exact["f1"]
                self.claim(f"{name} labels reach >= 0.8x the exact-label PRM's first-error F1", "OmegaPRM / Math-Shepherd",
                           f"{f['f1']:.3f} vs {exact['f1']:.3f} ({ratio:.2f}x)", ratio >= 0.8)

    # ------------------------------------------------------------------ other sections

    def organism_section(self) -> list[str]:
        r = self.runs
        lines = ["## The organism", ""]
        results = _jsonl(r.out / "sft-s0-greedy" / "results.jsonl")
        if results:
            rates, kinds = step_error_rates(results)
            lines.append("SFT seed 0, greedy, held-out test problems: probability that step i is the first wrong one, "
                         "given the steps before it were right:")
            lines.append("")
            lines.append("| step | " + " | ".join(str(i + 1) for i in range(len(rates))) + " |")
            lines.append("|---|" + "---|" * len(rates))
            lines.append("| first-error rate (%) | " + " | ".join(f"{100 * x:.1f}" for x in rates) + " |")
            total = sum(kinds.values()) or 1
            lines += ["", f"Errors that are the misconception (dropped carry / smaller-from-larger borrow): "
                      f"{kinds['misconception']} of {total} ({100 * kinds['misconception'] / total:.0f}%); other slips: {kinds['other']}.", ""]
        checks = []
        if self.sft.values:
            checks.append(f"- SFT greedy accuracy over {len(self.sft.values)} seeds: {self.sft.fmt()} "
                          f"(goal: sd <= 2 points, mean in 35-65%; eval set ±{100 * 1.96 * self.sft.binom:.1f} at 95%)")
        exact = prm_f1(r, "truth")
        if exact:
            checks.append(f"- exact-label PRM first-error F1 on held-out samples: {exact['f1']:.3f} at the validation-chosen "
                          f"threshold {exact['threshold']:.3f} (goal >= 0.8)")
        cells = sweep_cells(r)
        if 16 in cells.get("best_of_n", {}) and 16 in cells.get("majority", {}):
            checks.append(f"- PRM best-of-16 {_pct(cells['best_of_n'][16]['accuracy'])} vs majority@16 "
                          f"{_pct(cells['majority'][16]['accuracy'])}")
        sft_wall = [(r.summary(f"sft-s{s}") or {}).get("wall_s") for s in r.seeds]
        checks.append(f"- SFT wall time: {_mean_wall(sft_wall)} s per seed (goal <= 600)")
        rl_walls = [r.online(a).extra.get("wall_s", 0) for a in ONLINE if r.online(a).values]
        if rl_walls:
            checks.append(f"- longest online-RL run: {max(rl_walls):.0f} s (goal <= 900)")
        return lines + checks + [""]

    def prm_section(self) -> list[str]:
        lines = ["## Process reward models", "",
                 "Same policy samples (4 per training problem) labelled three ways; each PRM initialised from the "
                 "SFT policy; first-error F1 (ProcessBench) on held-out test samples at the threshold that "
                 "maximises it on validation samples; the oracle (best-on-test) F1 beside it.", "",
                 "| labels | first-error F1 | oracle F1 | step AUC | threshold (from validation) |", "|---|---|---|---|---|"]
        for prm in (*LABELS, "implicit"):
            f = prm_f1(self.runs, prm)
            if f:
                lines.append(f"| {prm} | {f['f1']:.3f} | {f['oracle_f1']:.3f} | {f['step_auc'] or 0:.3f} | {f['threshold']:.3f} |")
        return lines + [""]

    def value_section(self) -> list[str]:
        v = value_ranking(self.runs)
        if not v or v["auc"] is None:
            return []
        lines = ["## OREO's value model: how it ranks solutions", "",
                 f"The OREO policy's 16 samples per test problem (temperature 0.8, sampled pass@1 {_pct(v['pass1'])}), "
                 f"ranked by V(final state): the highest-valued one is right on {_pct(v['bon'])}% of the problems. Across "
                 f"all samples V separates right from wrong with AUC {v['global_auc'] or 0:.3f} (mean V {v['v_right']:.3f} "
                 f"vs {v['v_wrong']:.3f}); among the samples of one problem, AUC {v['auc']:.3f} (0.5 = chance)."]
        if v["auc"] < 0.6:
            learned = ("it has learned which problems are hard, not which solution of a problem is right"
                       if (v["global_auc"] or 0) >= 0.65 else
                       "at this budget it has barely moved from the base rate (trained longer, it learns which problems "
                       "are hard, still not which solution is right)")
            lines.append(f"Within a problem the value ranks no better than chance: {learned}. Telling the right "
                         "solution from a wrong one needs the arithmetic check the policy itself lacks, so value-guided "
                         "beam search keeps diverse, mostly wrong, branches. docs/results/organism.md has the ablation "
                         "(value lr, epochs, level).")
        return lines + [""]

    def search_section(self) -> list[str]:
        cells = sweep_cells(self.runs)
        if not cells:
            return []
        budgets = sorted({n for c in cells.values() for n in c})
        lines = ["## Search: accuracy vs budget", "",
                 "SFT seed-0 policy; step scores from the exact-label PRM; held-out test problems. Cells: accuracy % "
                 "(generated tokens per problem).", "",
                 "| method | " + " | ".join(f"n={n}" for n in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for m, by_n in cells.items():
            lines.append(f"| {m} | " + " | ".join(
                f"{_pct(by_n[n]['accuracy'])} ({by_n[n]['tokens']:.0f})" if n in by_n else "–" for n in budgets) + " |")
        fig = self._search_figure(cells)
        if fig:
            lines += ["", f"![accuracy vs generated tokens]({fig})"]
        return lines + [""]

    def rl_section(self) -> list[str]:
        lines = ["## Online RL: held-out accuracy vs rollouts", "",
                 "Mean over seeds at every evaluation (step 0 = the SFT start):", ""]
        any_curve = False
        for algo in ONLINE:
            curves = self.runs.curve(algo)
            if not curves:
                continue
            any_curve = True
            steps, rollouts, means, sds = mean_curve(curves)
            lines.append(f"- {ALGO_NAMES[algo]} ({len(curves)} seeds): " + ", ".join(
                f"{x}: {_pct(m)}" for x, m in zip(rollouts, means)))
        fig = self._rl_figure() if any_curve else None
        if fig:
            lines += ["", f"![accuracy vs rollouts]({fig})"]
        return lines + [""] if any_curve else []

    # ------------------------------------------------------------------ figures

    def _search_figure(self, cells) -> str | None:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for m, by_n in cells.items():
            ns = sorted(by_n)
            ax.plot([by_n[n]["tokens"] for n in ns], [100 * by_n[n]["accuracy"] for n in ns], marker="o", label=m)
        ax.set_xscale("log")
        return self._finish(fig, ax, "generated tokens per problem", "held-out accuracy (%)",
                            "Search on the gym organism (exact-label PRM)", "gym_search.png")

    def _rl_figure(self) -> str | None:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for algo in ONLINE:
            curves = self.runs.curve(algo)
            if not curves:
                continue
            _, rollouts, means, sds = mean_curve(curves)
            ax.plot(rollouts, [100 * m for m in means], marker=".", label=f"{ALGO_NAMES[algo]} ({len(curves)})")
            ax.fill_between(rollouts, [100 * (m - s) for m, s in zip(means, sds)],
                            [100 * (m + s) for m, s in zip(means, sds)], alpha=0.12)
        return self._finish(fig, ax, "rollouts (fresh samples)", "held-out greedy accuracy (%)",
                            "Online RL on the gym organism", "gym_rl.png")

    def _finish(self, fig, ax, xlabel: str, ylabel: str, title: str, name: str) -> str:
        """The figures' common labels, grid and legend; then saved."""
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        return self._save(fig, name)

    def _save(self, fig, name: str) -> str:
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(self.figures_dir / name, dpi=110)
        _pyplot().close(fig)
        return f"{self.figures_dir.name}/{name}"

    # ------------------------------------------------------------------ page

    def render(self) -> str:
        self.check_claims()
        head = ["# Results on the gym organism", "",
                f"Generated by `{self.command}` ({self.size_name} size"
                + (f", {self.wall_s / 60:.0f} minutes" if self.wall_s else "") + f"); seeds {list(self.runs.seeds)}.",
                "Every accuracy is greedy pass@1 on the same held-out test problems unless a row says otherwise; "
                "± is the sd over seeds. A difference \"exceeds the noise\" when it is larger than twice its standard "
                "error sqrt(sd_a²/k_a + sd_b²/k_b + p_a(1-p_a)/N + p_b(1-p_b)/N) (k seeds, N problems).", ""]
        if self.sft.n:
            head.append(f"Eval set: N = {self.sft.n} problems, so one accuracy near {_pct(self.sft.mean)}% carries a binomial "
                        f"standard error of ±{100 * self.sft.binom:.1f} points.")
            head.append("")
        body = ["## Results", ""] + self.table() + [""]
        claims = ["## The papers' claims on this organism", "", "| claim | paper | ours | verdict |", "|---|---|---|---|"]
        claims += [f"| {c} | {p} | {o} | {_verdict(h)} |" for c, p, o, h in self.claims] + [""]
        return "\n".join(head + body + claims + diagnosis_section(self.runs) + self.organism_section() + self.prm_section()
                         + self.search_section() + self.value_section() + self.rl_section()) + "\n"


def _mean_wall(values) -> str:
    vals = [v for v in values if v]
    return f"{st.mean(vals):.0f}" if vals else "–"


def _offline_data(runs: Runs) -> str:
    summ = runs.summary("collect-offline") or {}
    n = summ.get("records")
    return f"{n} trajectories ({summ.get('records_correct', 0)} correct)" if n else "collected samples"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_page(out: Path, seeds: tuple[int, ...], size_name: str, command: str, page_path: Path,
               wall_s: float | None = None) -> Path:
    """Render the page for the runs under `out` into page_path (figures beside it)."""
    from reasoner.utils.run import write_text_atomic

    page_path = Path(page_path)
    page_path.parent.mkdir(parents=True, exist_ok=True)
    page = Page(Runs(out, seeds), size_name, command, wall_s, page_path.parent / f"{page_path.stem}_figures")
    write_text_atomic(page_path, page.render())
    return page_path
