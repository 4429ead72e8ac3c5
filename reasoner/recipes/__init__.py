"""Recipes: whole pipelines of `reasoner` commands with their report (`reasoner recipe NAME`).

A recipe is a list of jobs (reasoner.recipes.jobs.Job), each one CLI call with its own run_dir,
plus a page writer. Recipes orchestrate stages as subprocesses; they import no stage.
"""

from __future__ import annotations

import time
from pathlib import Path

from reasoner.errors import UserError

RECIPES = ("gym",)


def run_recipe(name: str, size: str = "full", out: str | None = None, parallel: int = 2,
               report: str | None = None, overrides: list[str] | None = None, report_only: bool = False,
               rerun_changed: bool = False) -> Path:
    """Run (or continue) recipe `name` at `size` and write its results page; returns the page path."""
    from reasoner.recipes import gym, gym_page
    from reasoner.recipes.jobs import run_jobs

    if name not in RECIPES:
        raise UserError(f"recipe '{name}' is unknown (choose from {', '.join(RECIPES)})")
    if size not in gym.SIZES:
        raise UserError(f"recipe size '{size}' is unknown (choose from {', '.join(gym.SIZES)})")
    if parallel < 1:
        raise UserError(f"--jobs must be >= 1 (got {parallel})")
    plan = gym.SIZES[size]
    out_dir = Path(out or f"runs/recipe-gym-{size}").resolve()
    jobs = gym.build(out_dir, plan, overrides)
    clock = _WallClock(out_dir / "recipe_wall_s.txt")
    wall = clock.before if report_only and clock.before else None   # --report-only: the runs' own time
    if not report_only:
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            run_jobs(jobs, parallel=parallel, on_tick=clock.save, rerun_changed=rerun_changed)
        finally:  # an interrupted invocation's time counts too
            wall = clock.save()
    page = Path(report) if report else out_dir / "gym.md"
    flags = {"full": "", "quick": " --quick", "toy": " --toy"}[size]
    command = f"reasoner recipe gym{flags}" + (f" --out {out}" if out else "")
    return gym_page.write_page(out_dir, plan.seeds, size, command, page, wall)


class _WallClock:
    """Total wall time over every (resumed) invocation of the recipe in out_dir, saved as the
    recipe goes (every job start and end), so a killed invocation loses at most the time since."""

    def __init__(self, path: Path):
        self.path, self.started = path, time.time()
        self.before = float(path.read_text()) if path.is_file() else 0.0

    def save(self) -> float:
        total = self.before + time.time() - self.started
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{total:.1f}\n")
        tmp.replace(self.path)
        return total
