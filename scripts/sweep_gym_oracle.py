"""The gym sweep with the gym's exact step checker as the scorer: an upper bound for any PRM.

Every search method is run exactly as `reasoner decode --sweep` runs it, but each step is scored
1.0 if it is right and 0.0 if not (`tasks.arith.check_steps`, ProcessBench semantics). This
separates the two things a PRM-guided search needs, a search that spends the budget well and a
verifier that can tell a right step from a wrong one, and shows what the methods do when the
second is perfect. Example (writes sweep.jsonl / sweep.md / sweep.png into --run-dir):

    python scripts/sweep_gym_oracle.py --model runs/gym-sft/final --problems 200 \\
        --budgets 1 2 4 8 16 32 64 --run-dir runs/search/gym-oracle-sweep
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reasoner import config  # noqa: E402
from reasoner.search import resolve_params  # noqa: E402
from reasoner.search.report import markdown_table, plot  # noqa: E402
from reasoner.search.sweep import Sweep, SweepPlan  # noqa: E402
from reasoner.stages.decode import _setup  # noqa: E402
from reasoner.tasks import get_task  # noqa: E402

METHODS = ["majority", "prm_min_max", "prm_min_vote", "prm_last_max", "prm_last_vote", "beam", "dvts", "mcts",
           "value_beam"]


class GymStepChecker:
    """StepScorer over the gym's ground truth: 1.0 for a right step, 0.0 for a wrong one."""

    def __init__(self, problems, prompts):
        self.task = get_task("arith")
        self.by_prompt = dict(zip(prompts, problems))

    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        return [[1.0 if ok else 0.0 for ok in self.task.check_steps(self.by_prompt[p], s)] for p, s in zip(prompts, steps)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/gym-sft/final")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--budgets", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--run-dir", default="runs/search/gym-oracle-sweep")
    ap.add_argument("overrides", nargs="*", help="extra decode config overrides")
    args = ap.parse_args()
    cfg = config.load("decode", [f"model.name_or_path={args.model}", "data.split=test", f"data.num_problems={args.problems}",
                                 "generation.max_new_tokens=64", "generation.batch_size=64", *args.overrides])
    problems, prompts, generator, _, task, grade = _setup(cfg)
    plan = SweepPlan({m: resolve_params(m, cfg.search.params if m == cfg.search.name else {}, cfg.generation, cfg.scorer)
                      for m in args.methods}, sorted(set(args.budgets)), chunk=cfg.generation.batch_size)
    out = Path(args.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = Sweep(problems, prompts, generator, GymStepChecker(problems, prompts), task, grade, out).run(plan)
    title = f"{args.model} on arith, exact step checker as scorer ({len(problems)} problems)"
    (out / "sweep.md").write_text(markdown_table(cells, title))
    plot(cells, out / "sweep.png", title)
    (out / "summary.json").write_text(json.dumps({"cells": cells}, indent=2) + "\n")
    print(markdown_table(cells).split("\n\nEvery cell")[0])


if __name__ == "__main__":
    main()
