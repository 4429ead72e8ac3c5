"""The PRM and offline-RL sections of docs/results/real.md (scripts/real_model_report.py):
Shepherd-PRM best-of-n vs majority vote on one shared pool of samples, and OREO vs RFT from the
same start on the same collected data. Each section is empty until its runs are there."""

from __future__ import annotations

import json
from pathlib import Path

from real_model_stats import acc_cell, paired_delta, pct, per_problem, read_jsonl, run_config, verdict

REPO = Path(__file__).resolve().parents[1]
AGGREGATES = {"min": "the solution whose lowest step score is highest, Math-Shepherd's aggregate",
              "last": "the solution whose last step scores highest",
              "prod": "the solution with the highest product of step scores",
              "mean": "the solution with the highest mean step score"}


def _summary(run: Path) -> dict:
    path = run / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def diff_cell(base: dict[str, float], new: dict[str, float]) -> str:
    d, lo, hi, _ = paired_delta(base, new)
    return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


# --------------------------------------------------------------------------- PRM best-of-n


def sweep_cells(run: Path) -> dict[tuple[str, int], dict[str, float]]:
    """(method, n) -> problem id -> correctness, from a decode sweep's sweep_results.jsonl
    (the last record of a problem wins, as a resumed sweep appends)."""
    out: dict[tuple[str, int], dict[str, float]] = {}
    path = run / "sweep_results.jsonl"
    for r in read_jsonl(path) if path.is_file() else []:
        out.setdefault((r["method"], int(r["n"])), {})[r["id"]] = float(bool(r["correct"]))
    return out


def _search_temperature() -> float | None:
    import yaml

    path = REPO / "conf" / "search" / "majority.yaml"
    return (yaml.safe_load(path.read_text()).get("params") or {}).get("temperature") if path.is_file() else None


def prm_setting(runs: Path) -> str:
    """What was sampled, how it was labelled, how the PRM was trained, read from the runs."""
    col, prm = _summary(runs / "collect-shepherd"), _summary(runs / "prm-shepherd")
    ccfg, pcfg = run_config(runs / "collect-shepherd") or {}, run_config(runs / "prm-shepherd") or {}
    stats = col.get("label_stats", {})
    gen, labels = ccfg.get("generation", {}), ccfg.get("labels", {})
    lora = (pcfg.get("model") or {}).get("lora", {})
    loss = prm.get("final_loss")
    text = (f"The untrained model sampled {col.get('n')} solutions to each of {col.get('problems')} training problems "
            f"of the GRPO task at temperature {gen.get('temperature')} ({pct(col.get('accuracy', 0))}% right). "
            f"Math-Shepherd labelled every step by {labels.get('rollouts')} rollouts from its prefix "
            f"({stats.get('rollouts')} rollouts; hard label = some rollout reached the gold answer, "
            f"{pct(stats.get('positive_rate', 0))}% of {stats.get('steps')} steps positive). A LoRA r={lora.get('r')} "
            f"PRM (the '+'/'-' logits at a tag after each step, initialised from the same model) learned them: "
            f"{pcfg.get('epochs')} epoch, {prm.get('steps')} steps of {pcfg.get('batch_size')}, lr "
            f"{(pcfg.get('optim') or {}).get('lr')}")
    text += f", final loss {loss:.3f}." if isinstance(loss, (int, float)) else "."
    cells = sweep_cells(runs / "test-prm-bon")
    top = max((n for _, n in cells), default="?")
    agg = ((run_config(runs / "test-prm-bon") or {}).get("scorer") or {}).get("aggregate")
    how = AGGREGATES.get(agg, f"the solution with the highest '{agg}' of its step scores")
    return text + (f" Then each test problem got {top} samples at temperature {_search_temperature()} (the search "
                   f"methods' default), one pool read by both: majority vote over the committed answers, and PRM "
                   f"best-of-n ({how}). Settings fixed before the run (no search).")


def prm_section(runs: Path) -> list[str]:
    """Majority vote vs PRM best-of-n at each budget, on the same samples (empty without the runs)."""
    cells = sweep_cells(runs / "test-prm-bon")
    budgets = sorted({n for m, n in cells if m == "majority"} & {n for m, n in cells if m == "best_of_n"})
    if not budgets:
        return []
    oracle = {c["n"]: c.get("oracle") for c in _summary(runs / "test-prm-bon").get("cells", [])
              if c.get("method") == "majority"}
    lines = ["## Shepherd PRM on SmolLM2: best-of-n vs majority vote", "", prm_setting(runs), "",
             "| samples per problem | majority vote [95% CI] | PRM best-of-n [95% CI] | best-of-n - majority, paired [95% CI] "
             "| some sample right | n |", "|---:|---:|---:|---:|---:|---:|"]
    for n in budgets:
        maj, bon = cells[("majority", n)], cells[("best_of_n", n)]
        top = oracle.get(n)
        lines.append(f"| {n} | {acc_cell(maj)} | {acc_cell(bon)} | {diff_cell(maj, bon)} | "
                     f"{pct(top) if isinstance(top, (int, float)) else '-'} | {len(bon)} |")
    top_n = budgets[-1]
    d, lo, hi, k = paired_delta(cells[("majority", top_n)], cells[("best_of_n", top_n)])
    lines += ["", f"At {top_n} samples, best-of-{top_n} minus majority@{top_n}: {100 * d:+.1f} points on {k} problems: "
              f"{verdict(lo, hi)}.", ""]
    return lines + prm_fit(runs)


def prm_fit(runs: Path) -> list[str]:
    """How well the PRM fits its own training labels (eval-prm on its training file), if measured."""
    fit = _summary(runs / "fit-prm-shepherd")
    if not fit:
        return []
    return [f"How well the PRM learned its own training labels (`eval-prm` on its training file): step AUC "
            f"{fit['step_auc']:.2f}, right-vs-wrong solution AUC by the min step score {fit['solution_auc_min']:.2f} "
            f"(0.5 = chance); at the 0.5 threshold it recognises {pct(fit['acc_correct'])}% of the positive steps "
            f"and {pct(fit['acc_erroneous'])}% of the negative ones. Its training data held {fit['correct']} right "
            f"solutions of {fit['solutions']} ({pct(fit['outcome_accuracy'])}%) and {fit['positive_steps']} positive "
            f"steps of {fit['steps']}." + (WEAK_FIT if fit["solution_auc_min"] < 0.65 else ""), ""]


WEAK_FIT = (" So the PRM barely ranks even the solutions it trained on, and best-of-n has little to choose by: "
            "with a policy this rarely right, four rollouts from a step prefix seldom reach the answer, the "
            "labels are nearly all negative, and one epoch of LoRA learns to call every step wrong. A stronger "
            "sampler (the GRPO model) or more rollouts per step would give it positives to learn from; not run here.")


# --------------------------------------------------------------------------- OREO vs RFT


def offline_setting(runs: Path) -> str:
    col, ccfg = _summary(runs / "collect-offline"), run_config(runs / "collect-offline") or {}
    rft, oreo = run_config(runs / "rft") or {}, run_config(runs / "oreo") or {}
    sel = ccfg.get("selection", {})
    algo = oreo.get("algo", {})
    steps = {w: (_summary(runs / w) or {}).get("steps") for w in ("rft", "oreo")}
    return (f"SmolLM2-135M-Instruct (itself an SFT model; the GSM8K SFT above solves too few problems to learn "
            f"from) sampled {col.get('n')} solutions to each of {col.get('problems')} training problems of the GRPO "
            f"task at temperature {(ccfg.get('generation') or {}).get('temperature')} ({pct(col.get('accuracy', 0))}% "
            f"right); kept per problem: <= {sel.get('max_positive')} right, <= {sel.get('max_negative')} wrong, "
            f"{col.get('records')} records ({col.get('records_correct')} right). Both start from the same model "
            f"with LoRA r={((rft.get('model') or {}).get('lora') or {}).get('r')}, {rft.get('epochs')} epoch, batch "
            f"{rft.get('batch_size')}, lr {(rft.get('optim') or {}).get('lr')}: RFT fine-tunes on the right records "
            f"({steps['rft']} steps); OREO (token level, beta {algo.get('oreo_beta')}, KL {algo.get('kl_coef')}, a LoRA "
            f"value model at lr {algo.get('value_lr')}) learns from all of them ({steps['oreo']} steps). Settings "
            "fixed before the run (no search). A training seed sets the data order and the LoRA initialisation; the "
            "collected data is the same for every seed. All decode the GRPO section's test problems greedily.")


def offline_seeds(runs: Path) -> tuple[list[tuple[int, str, str]], list[int]]:
    """(seed, rft run, oreo run) for each training seed with both test decodes (seed 0 is rft/oreo,
    seed k rft-sk/oreo-sk), and the seeds with an RFT decode but no OREO one."""
    def done(name: str) -> bool:
        return (runs / f"test-{name}-task" / "results.jsonl").is_file()

    names = {0: ("rft", "oreo")}
    for d in runs.glob("test-rft-s*-task"):
        k = int(d.name[len("test-rft-s"):-len("-task")])
        names[k] = (f"rft-s{k}", f"oreo-s{k}")
    paired = [(k, r, o) for k, (r, o) in sorted(names.items()) if done(r) and done(o)]
    return paired, [k for k, (r, o) in sorted(names.items()) if done(r) and not done(o)]


def mean_sd(values: list[float]) -> str:
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


def offline_section(runs: Path) -> list[str]:
    """Start vs RFT vs OREO on the same test problems, per training seed (empty without the runs)."""
    seeds, rft_only = offline_seeds(runs)
    if not seeds or not (runs / "test-base-task" / "results.jsonl").is_file():
        return []
    base = per_problem(runs / "test-base-task")
    scores = {who: [per_problem(runs / f"test-{pair[i + 1]}-task") for pair in seeds] for i, who in enumerate(("RFT", "OREO"))}
    acc = {who: [sum(r.values()) / len(r) for r in rs] for who, rs in scores.items()}
    k = len(seeds)
    lines = ["## OREO vs RFT on SmolLM2", "", offline_setting(runs), "",
             "| model | " + " | ".join(f"seed {seed} [95% CI]" for seed, _, _ in seeds) + " | mean ± sd over seeds | vs the start (mean) |",
             "|---|" + "---:|" * (k + 2),
             f"| start (untrained) | {acc_cell(base)}" + " |" * k + " | |"]
    for who in ("RFT", "OREO"):
        gain = sum(acc[who]) / k - sum(base.values()) / len(base)
        lines.append(f"| {who} | " + " | ".join(acc_cell(r) for r in scores[who]) + f" | {mean_sd(acc[who])} | {100 * gain:+.1f} |")
    diffs = [paired_delta(r, o) for r, o in zip(scores["RFT"], scores["OREO"])]
    beyond = sum(1 for _, lo, hi, _ in diffs if lo > 0 or hi < 0)
    per_seed = "; ".join(f"seed {seed}: {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                         for (seed, _, _), (d, lo, hi, _) in zip(seeds, diffs))
    lines += ["", f"OREO minus RFT, paired on the same {diffs[0][3]} problems, per training seed: {per_seed}; mean over "
              f"seeds {mean_sd([d for d, *_ in diffs])}. The difference exceeds the test problems' noise in {beyond} of "
              f"{k} seed(s)" + (" (one seed: the spread over training seeds is not measured)." if k == 1 else "."), ""]
    for seed in rft_only:
        acc_only = sum(per_problem(runs / f"test-rft-s{seed}-task").values()) / len(base)
        lines += [f"Seed {seed}: RFT only ({pct(acc_only)}%); its OREO run did not finish, so neither is in the table.", ""]
    return lines
