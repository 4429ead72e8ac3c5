"""Why a claim fails: the mechanism behind each failing claim, measured from files the stages
already wrote (metrics.jsonl, trajectories.jsonl, sweep_results.jsonl), so every run of the
recipe re-derives it instead of the page repeating a story from an earlier run.
"""

from __future__ import annotations

import math
import statistics as st
from collections import Counter, defaultdict
from pathlib import Path

from reasoner.recipes.gym_report import Runs, _jsonl, run_config


def prime_training_signal(runs: Runs) -> dict | None:
    """How many of each step's groups PRIME's accuracy filter kept, and whether its implicit PRM
    moved off log 2 (the BCE of a PRM whose rewards are still ~0)."""
    kept, losses = [], []
    for s in runs.seeds:
        rows = _jsonl(runs.out / f"rl-prime-s{s}" / "metrics.jsonl")
        kept += [r.get("kept_groups", 0) for r in rows if "loss" in r or "skipped" in r]
        losses += [r["prm_loss"] for r in rows if "prm_loss" in r]
    cfg = run_config(runs.out / f"rl-prime-s{runs.seeds[0]}")
    if not kept or not cfg.get("prompts_per_step"):
        return None
    tail = losses[len(losses) // 2:] or losses
    algo = cfg.get("algo") or {}
    return {"kept": st.mean(kept), "prompts": cfg["prompts_per_step"], "prm_loss_late": st.mean(tail) if tail else None,
            "filter": algo.get("accuracy_filter"), "prm_lr": algo.get("prm_lr"), "n": (cfg.get("generation") or {}).get("n")}


def _prime_line(p: dict) -> str:
    lo, hi = p["filter"] or (0.0, 1.0)
    n = p["n"] or 0
    drops_mixed = n > 1 and (lo > 1 / n + 1e-9 or hi < (n - 1) / n - 1e-9)
    text = (f"- **PRIME**: its accuracy filter {list(p['filter'] or [])} kept {p['kept']:.1f} of {p['prompts']} groups "
            f"per step ({100 * p['kept'] / p['prompts']:.0f}% of the rollouts reach the update)")
    text += (f"; at {n} samples per prompt it also drops the groups with 1 or {n - 1} right answers, which carry "
             "GRPO's signal." if drops_mixed else ": every group with both right and wrong answers, as GRPO.")
    if p["prm_loss_late"] is not None:
        stuck = abs(p["prm_loss_late"] - math.log(2)) < 0.005
        text += (f" Its implicit PRM's loss over the second half of training averaged {p['prm_loss_late']:.4f}"
                 + (f" ≈ log 2 (prm_lr {p['prm_lr']}): the PRM never learned, so its process rewards stay ~0 and "
                    "PRIME trains as RLOO: there is no dense signal to make it more sample-efficient than GRPO."
                    if stuck else " (log 2 = 0.6931: the PRM learned)."))
    return text


def rlep_replay_share(runs: Runs) -> dict | None:
    """Replayed answers per step against fresh rollouts, and the pool's size in problems."""
    replayed, pool = [], []
    for s in runs.seeds:
        rows = _jsonl(runs.out / f"rl-rlep-s{s}" / "metrics.jsonl")
        replayed += [r["replayed"] for r in rows if "replayed" in r]
        pool += [r["pool_size"] for r in rows if "pool_size" in r]
    cfg = run_config(runs.out / f"rl-rlep-s{runs.seeds[0]}")
    prompts = cfg.get("prompts_per_step")
    if not replayed or not prompts:
        return None
    algo, data = cfg.get("algo") or {}, cfg.get("data") or {}
    pooled = {t.get("problem_id") for t in _jsonl(Path(algo.get("pool_file") or "/nonexistent"))
              if (t.get("reward") or 0) >= 1}
    return {"replayed": st.mean(replayed), "pool_answers": st.mean(pool) if pool else 0, "pool_problems": len(pooled),
            "prompts": prompts, "fresh": prompts * (cfg.get("generation") or {}).get("n", 0), "replay": algo.get("replay"),
            "train_problems": data.get("num_problems")}


def mc_label_placement(runs: Runs, label: str) -> dict | None:
    """On the policy's wrong samples: where the first step the labeler calls wrong lies relative
    to the true first error (collect stores the exact labels beside the MC ones)."""
    where, right_called_wrong, right = Counter(), 0, 0
    for t in _jsonl(runs.out / f"collect-{label}" / "trajectories.jsonl"):
        mc, true = t.get("step_labels"), (t.get("meta") or {}).get("true_step_labels")
        if not mc or not true or len(mc) != len(true):
            continue
        for m, ok in zip(mc, true):
            if ok and m is not None:
                right += 1
                right_called_wrong += m < 0.5
        if all(true):
            continue
        first_true = true.index(False)
        labelled = [i for i, m in enumerate(mc) if m is not None]
        wrong = [i for i in labelled if mc[i] < 0.5]
        if labelled == [len(mc) - 1]:
            where["outcome only"] += 1
        elif not wrong:
            where["none"] += 1
        else:
            where["early" if wrong[0] < first_true else "exact" if wrong[0] == first_true else "late"] += 1
    total = sum(where.values())
    if not total:
        return None
    return {"wrong_samples": total, **{k: where[k] / total for k in ("early", "exact", "late", "outcome only", "none")},
            "right_called_wrong": right_called_wrong / max(1, right)}


def search_exploitation(runs: Runs) -> dict[str, dict] | None:
    """Between the two largest budgets (the smaller's samples are a subset of the larger's pool):
    problems a method solved at the smaller budget and lost at the larger, and the reverse."""
    per = defaultdict(dict)
    for r in _jsonl(runs.out / "search-sweep" / "sweep_results.jsonl"):
        per[(r["method"], r["n"])][r["id"]] = bool(r["correct"])
    budgets = sorted({n for _, n in per})
    if len(budgets) < 2:
        return None
    lo, hi = budgets[-2], budgets[-1]
    out = {}
    for method in sorted({m for m, _ in per}):
        a, b = per.get((method, lo), {}), per.get((method, hi), {})
        common = a.keys() & b.keys()
        if common:
            out[method] = {"lo": lo, "hi": hi, "lost": sum(a[k] and not b[k] for k in common),
                           "gained": sum(b[k] and not a[k] for k in common), "problems": len(common)}
    return out or None


def diagnosis_section(runs: Runs) -> list[str]:
    """The page's "why" section: one paragraph per mechanism that was measured."""
    lines = ["## Why the failing claims fail (measured from this run's files)", ""]
    p = prime_training_signal(runs)
    if p:
        lines.append(_prime_line(p))
    r = rlep_replay_share(runs)
    if r:
        lines.append(f"- **RLEP**: {r['replayed']:.1f} replayed answers per step beside {r['fresh']} fresh rollouts "
                     f"(up to {r['replay']} per prompt): the pool's {r['pool_answers']:.0f} answers cover "
                     f"{r['pool_problems']} of the {r['train_problems']} problems the run draws its prompts from"
                     + (", so most prompts have nothing to replay and RLEP trains almost like GRPO." if
                        r["pool_problems"] < 0.5 * (r["train_problems"] or 1) else
                        ", so most groups get replayed answers (the claim's step count is read on the "
                        "evaluation grid: every eval_every steps)."))
    placements = {label: mc_label_placement(runs, label) for label in ("shepherd", "omegaprm")}
    if any(placements.values()):
        parts = [f"{label}: before it in {100 * m['early']:.0f}%, at it in {100 * m['exact']:.0f}%, after it in "
                 f"{100 * m['late']:.0f}%, only the outcome labelled in {100 * m['outcome only']:.0f}% "
                 f"(of {m['wrong_samples']}; right steps labelled wrong: {100 * m['right_called_wrong']:.0f}%)"
                 for label, m in placements.items() if m]
        lines.append("- **Math-Shepherd / OmegaPRM labels**, against the exact labels of the same samples: on the wrong "
                     "samples, the first step labelled wrong lies " + "; ".join(parts) + ". A Monte-Carlo label asks "
                     "whether *this policy* can finish from the step. Its errors are systematic (the misconception), so "
                     "from a right step before a carry it rarely can, and Math-Shepherd marks the error too early; on "
                     "problems it never solves no rollout succeeds, so OmegaPRM's binary search has no correct prefix to "
                     "start from and only the outcome gets a label.")
    e = search_exploitation(runs)
    if e:
        parts = [f"{m} lost {v['lost']} / gained {v['gained']}" for m, v in e.items() if m != "majority"]
        any_v = next(iter(e.values()))
        lines.append(f"- **Search at n={any_v['hi']}**: problems solved at n={any_v['lo']} and lost at n={any_v['hi']} / "
                     f"the reverse ({any_v['problems']} problems): " + ", ".join(parts) + ". Best-of-N's n="
                     f"{any_v['lo']} samples are a subset of its n={any_v['hi']} pool, so each lost problem is a wrong "
                     "solution that the PRM scores above every right one turning up among the extra samples (PRM "
                     "exploitation); weighted best-of-N, which sums the scores of an answer, barely loses any. Beam and "
                     "DVTS pick by the same scores, so at this budget they are capped by the PRM, not by the search.")
    return lines + [""] if len(lines) > 2 else []
