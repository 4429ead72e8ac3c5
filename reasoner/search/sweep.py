"""Accuracy-vs-budget sweeps: every (method, n) cell over the same problems, resumable by cell.

Sample-then-select methods with the same sampling settings share ONE pool of max(n) samples per
problem, scored once; the cell (method, n) chooses among the first n samples and is charged for
those n only (as search-and-learn and OpenR evaluate best-of-N). Step-level methods run afresh
for every n. Each finished cell is appended to sweep.jsonl (and its per-problem outcomes to
sweep_results.jsonl), so an interrupted sweep re-runs only unfinished cells.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from reasoner.search.base import SearchResult, SearchTask
from reasoner.search.methods import SEARCH_METHODS
from reasoner.search.pool import draw, select_prefix
from reasoner.search.states import Scores
from reasoner.utils.progress import log, progress

SAMPLING_KEYS = ("temperature", "top_p", "max_new_tokens", "seed", "stop")


@dataclass
class SweepPlan:
    methods: dict[str, dict]  # method name -> resolved params
    budgets: list[int]
    chunk: int = 32  # problems per search call (they advance in lockstep)


def fingerprint(name: str, params: dict, data: str = "") -> str:
    """Identifies a cell's settings and problems, so a resumed sweep never reuses cells of
    other settings or another problem set."""
    return json.dumps({"method": name, "problems": data, **params}, sort_keys=True)


def problems_key(problems) -> str:
    """Short digest of the problem ids (and their count)."""
    import hashlib

    ids = "\n".join(str(p.id) for p in problems)
    return f"{len(problems)}:{hashlib.sha1(ids.encode('utf-8')).hexdigest()[:12]}"


def load_cells(path: Path) -> list[dict]:
    from reasoner.utils.io import read_jsonl_tolerant

    return read_jsonl_tolerant(path)[0] if path.exists() else []


def cell_record(name: str, n: int, params: str, results: list[SearchResult], correct: list[bool],
                oracle: list[bool], wall_s: float) -> dict:
    """One cell's line of sweep.jsonl; `params` is the cell's fingerprint."""
    k = max(1, len(results))
    return {"method": name, "n": n, "problems": len(results), "accuracy": sum(correct) / k,
            "oracle": sum(oracle) / k, "generations": sum(r.generations for r in results) / k,
            "tokens": sum(r.generated_tokens for r in results) / k, "wall_s": round(wall_s, 2),
            "params": params}


class Sweep:
    """Runs a SweepPlan on problems with one generator and scorer; writes into out_dir."""

    def __init__(self, problems, prompts: list[str], generator, scorer, task: SearchTask,
                 grade: Callable[[str | None, object], bool], out_dir: Path):
        self.problems, self.prompts, self.generator, self.scorer = problems, prompts, generator, scorer
        self.task, self.grade, self.out_dir = task, grade, Path(out_dir)
        self.key = problems_key(problems)

    def fingerprint(self, name: str, plan: "SweepPlan") -> str:
        return fingerprint(name, plan.methods[name], self.key)

    def run(self, plan: SweepPlan) -> list[dict]:
        from reasoner.utils.io import append_jsonl

        cells_path = self.out_dir / "sweep.jsonl"
        done = {(c["method"], c["n"], c.get("params")) for c in load_cells(cells_path)}
        todo = [(m, n) for m in plan.methods for n in plan.budgets
                if (m, n, self.fingerprint(m, plan)) not in done]
        if len(todo) < len(plan.methods) * len(plan.budgets):
            log(f"resuming sweep: {len(plan.methods) * len(plan.budgets) - len(todo)} cells already in {cells_path}")
        pooled = [m for m in plan.methods if SEARCH_METHODS[m].pool_mode and any(t[0] == m for t in todo)]
        for group in self._pool_groups(pooled, plan):
            for rec, rows in self._pool_cells(group, plan, [t for t in todo if t[0] in group]):
                append_jsonl(self.out_dir / "sweep_results.jsonl", rows)
                append_jsonl(cells_path, [rec])
        for m, n in todo:
            if m in pooled:
                continue
            rec, rows = self._search_cell(m, n, plan)
            append_jsonl(self.out_dir / "sweep_results.jsonl", rows)
            append_jsonl(cells_path, [rec])
        keep = {(m, n, self.fingerprint(m, plan)) for m in plan.methods for n in plan.budgets}
        latest: dict[tuple, dict] = {}
        for c in load_cells(cells_path):
            if (c["method"], c["n"], c.get("params")) in keep:
                latest[(c["method"], c["n"])] = c
        return [latest[(m, n)] for m in plan.methods for n in plan.budgets if (m, n) in latest]

    # ------------------------------------------------------------------ cells

    def _grade(self, results: list[SearchResult], problems) -> tuple[list[bool], list[bool]]:
        correct, oracle = [], []
        for r, p in zip(results, problems):
            ok = r.answer is not None and bool(self.grade(r.answer, p))
            cand = [c["answer"] is not None and bool(self.grade(c["answer"], p)) for c in r.candidates]
            correct.append(ok)
            oracle.append(ok or any(cand))
        return correct, oracle

    def _rows(self, name: str, n: int, problems, results, correct) -> list[dict]:
        return [{"method": name, "n": n, "id": p.id, "answer": r.answer, "correct": ok,
                 "generations": r.generations, "generated_tokens": r.generated_tokens}
                for p, r, ok in zip(problems, results, correct)]

    def _pool_groups(self, names: list[str], plan: SweepPlan) -> list[list[str]]:
        """Pool methods whose sampling settings match draw from one shared pool."""
        groups: dict[str, list[str]] = {}
        for m in names:
            key = json.dumps({k: plan.methods[m][k] for k in SAMPLING_KEYS}, sort_keys=True)
            groups.setdefault(key, []).append(m)
        return list(groups.values())

    def _pool_cells(self, names: list[str], plan: SweepPlan, todo: list[tuple[str, int]]):
        """Draw max(n) samples per problem once, score once, then every (method, n) of `todo`."""
        from reasoner.scoring import aggregate

        params = plan.methods[names[0]]
        top = max(n for _, n in todo)
        needs_scores = any(SEARCH_METHODS[m].pool_mode != "majority" for m in names)
        results: dict[tuple[str, int], list[SearchResult]] = {t: [] for t in todo}
        started = time.time()
        with progress() as bar:
            tid = bar.add_task(f"pool x{top}", total=len(self.problems), info=", ".join(names))
            for start in range(0, len(self.problems), plan.chunk):
                prompts = self.prompts[start:start + plan.chunk]
                pools, _ = draw(prompts, self.generator, params, self.task, top)
                if needs_scores:
                    Scores(self.scorer, self.task, "last")([s for pool in pools for s in pool])
                by_agg = {agg: [[replace(s, score=aggregate(s.step_scores, agg)) for s in pool] for pool in pools]
                          for agg in {plan.methods[m]["agg"] for m, _ in todo}}
                for m, n in todo:
                    for scored in by_agg[plan.methods[m]["agg"]]:
                        results[(m, n)].append(select_prefix(scored, n, SEARCH_METHODS[m].pool_mode, self.task))
                bar.update(tid, advance=len(prompts))
        wall = time.time() - started
        out = []
        for (m, n), res in results.items():
            correct, oracle = self._grade(res, self.problems)
            rec = cell_record(m, n, self.fingerprint(m, plan), res, correct, oracle, wall)
            rec["shared_pool"] = top  # wall_s is the whole pool's (drawn once for these cells)
            log(f"{m} n={n}: accuracy {rec['accuracy']:.3f}  pass@{n} {rec['oracle']:.3f}  {rec['tokens']:.0f} tokens per problem")
            out.append((rec, self._rows(m, n, self.problems, res, correct)))
        return out

    def _search_cell(self, name: str, n: int, plan: SweepPlan):
        method, params = SEARCH_METHODS[name], plan.methods[name]
        results: list[SearchResult] = []
        started = time.time()
        with progress() as bar:
            tid = bar.add_task(f"{name} n={n}", total=len(self.problems), info="")
            for start in range(0, len(self.problems), plan.chunk):
                prompts = self.prompts[start:start + plan.chunk]
                results += method(prompts, self.generator, self.scorer, params, self.task, n)
                bar.update(tid, advance=len(prompts))
        correct, oracle = self._grade(results, self.problems)
        rec = cell_record(name, n, self.fingerprint(name, plan), results, correct, oracle, time.time() - started)
        log(f"{name} n={n}: accuracy {rec['accuracy']:.3f}  {rec['generations']:.1f} generations  "
            f"{rec['tokens']:.0f} tokens per problem")
        return rec, self._rows(name, n, self.problems, results, correct)
