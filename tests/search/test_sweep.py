"""Sweeps: one shared pool for sample-then-select methods, honest per-cell budgets, resume, report."""

from __future__ import annotations

import json
from types import SimpleNamespace

from reasoner.search import SearchTask, resolve_params
from reasoner.search.report import markdown_table, plot
from reasoner.search.sweep import Sweep, SweepPlan
from tests.search.mocks import RIGHT, LineScorer, MockPolicy

TASK = SearchTask(step_separator="\n", answer_style="answer")


def make(tmp_path, policy, count=4):
    problems = [SimpleNamespace(id=f"p{i}", answer=RIGHT) for i in range(count)]
    prompts = [f"Q{i}\n" for i in range(count)]
    return Sweep(problems, prompts, policy, LineScorer(), TASK, lambda a, problem: a == problem.answer, tmp_path)


def test_pool_is_drawn_once_and_cells_are_charged_for_their_prefix(tmp_path):
    policy = MockPolicy()
    plan = SweepPlan({m: resolve_params(m, {}) for m in ("majority", "best_of_n", "prm_min_vote")}, [1, 2, 8], chunk=4)
    cells = make(tmp_path, policy).run(plan)
    assert len(policy.calls) == 1 and policy.calls[0][1].n == 8
    at = {(c["method"], c["n"]): c for c in cells}
    assert [at[("best_of_n", n)]["generations"] for n in (1, 2, 8)] == [1, 2, 8]
    assert at[("best_of_n", 8)]["tokens"] * 4 == policy.tokens
    assert at[("best_of_n", 8)]["accuracy"] >= at[("majority", 8)]["accuracy"]
    assert at[("majority", 8)]["oracle"] == at[("best_of_n", 8)]["oracle"]  # same samples


def test_finished_cells_are_not_rerun_and_other_settings_are_not_reused(tmp_path):
    plan = SweepPlan({"beam": resolve_params("beam", {"width": 2})}, [2, 4], chunk=2)
    first = make(tmp_path, MockPolicy()).run(plan)
    policy = MockPolicy()
    again = make(tmp_path, policy).run(plan)
    assert policy.calls == [] and again == first
    wider = SweepPlan({"beam": resolve_params("beam", {"width": 4})}, [4], chunk=2)
    cells = make(tmp_path, policy).run(wider)
    assert policy.calls and len(cells) == 1 and json.loads(cells[0]["params"])["width"] == 4
    fewer = MockPolicy()
    cells = make(tmp_path, fewer, count=3).run(plan)  # another problem set: nothing reused
    assert fewer.calls and all(c["problems"] == 3 for c in cells)


def test_report_has_one_row_per_method_and_a_plot(tmp_path):
    cells = [{"method": m, "n": n, "accuracy": a, "oracle": a, "generations": n * g, "tokens": 30.0 * n, "wall_s": 1.0}
             for m, g, a in (("majority", 1, 0.3), ("beam", 4, 0.5)) for n in (1, 4)]
    table = markdown_table(cells, "demo")
    assert "| majority | 0.300 | 0.300 |" in table and "| beam | 4 | 0.500 |" in table
    plot(cells, tmp_path / "s.png", "demo")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
