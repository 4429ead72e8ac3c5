"""apply_labels on real gym problems with a truthful fake policy: Shepherd's hard labels equal
the ground truth, OmegaPRM's search solutions are written as their own records, and
labels=truth copies the checker."""

from __future__ import annotations

import random

import pytest

from reasoner.data import Trajectory
from reasoner.labeling.apply import ProblemGroup, apply_labels
from reasoner.labeling.rollout import Rollout
from reasoner.tasks import arith, get_task
from reasoner.tasks.arith import corrupt_solution, generate_problems

TASK = get_task("arith")


class Labels:
    rollouts, temperature, max_new_tokens = 4, 1.0, None
    budget, alpha, beta, length_scale, c_puct = 64, 0.5, 0.9, 500, 0.125


class Truthful:
    """From a prefix whose steps are all right, half the rollouts finish with the gold steps and
    half write a wrong answer; from a wrong prefix every rollout is wrong."""

    def __init__(self, problems):
        self.by_id = {p.id: p for p in problems}
        self.requests = 0

    def __call__(self, requests, k):
        self.requests += len(requests)
        out = []
        for r in requests:
            p = self.by_id[r.problem_id]
            good = all(arith.check_steps(p, list(r.steps)))
            rest = tuple(p.solution_steps[len(r.steps):])
            res = []
            for i in range(k):
                if good and i < k // 2:
                    res.append(Rollout("\n".join(rest), rest, True, 10))
                else:
                    res.append(Rollout("Answer: 999", ("Answer: 999",), False, 10))
            out.append(res)
        return out


def groups_for(problems):
    rng = random.Random(0)
    groups = []
    for p in problems:
        gold = list(p.solution_steps)
        bad, _ = corrupt_solution(p, rng)
        start, ops = arith.parse_prompt(p.prompt)
        values = arith.solve(start, ops)
        late = arith._propagate(values, ops, len(ops) - 1, values[-1] + 1)   # slip in the last operation
        samples = [Trajectory(f"{p.id}/{k}", p.id, p.prompt + "\n", "\n".join(s), s, None, r, meta={"num_tokens": 30})
                   for k, (s, r) in enumerate([(gold, 1.0), (bad, 0.0), (late, 0.0), (bad, 0.0)])]
        groups.append(ProblemGroup(p, p.prompt + "\n", samples, list(samples)))
    return groups


@pytest.fixture
def problems():
    return generate_problems(3, seed=1, min_ops=3, max_ops=3, max_operand=9)


def test_shepherd_hard_labels_match_truth_with_a_truthful_policy(problems):
    groups = groups_for(problems)
    fake = Truthful(problems)
    apply_labels("shepherd", groups, Labels, fake, TASK, "\n")
    for g in groups:
        for t in g.kept:
            truth = TASK.check_steps(g.problem, t.steps)
            assert [v > 0 for v in t.step_labels] == truth
            assert t.meta["mc_rollouts"][-1] == 0
        # rollouts are spent once per distinct prefix of the problem
        prefixes = {tuple(t.steps[:i]) for t in g.kept for i in range(1, len(t.steps))}
        assert g.rollouts == 4 * len(prefixes)
    assert fake.requests == sum(g.rollouts for g in groups) // 4


def test_omegaprm_writes_search_solutions_and_locates_errors(problems):
    groups = groups_for(problems)
    apply_labels("omegaprm", groups, Labels, Truthful(problems), TASK, "\n")
    for g in groups:
        assert g.rollouts <= Labels.budget
        for t in g.kept:
            assert t.meta["origin"] == "sample" and len(t.step_labels) == len(t.steps)
            if t.reward == 0 and "first_error" in t.meta:
                assert t.meta["first_error"] == arith.first_error(g.problem, t.steps)
        assert g.extra, "wrong rollouts of inner states are searched and written"
        written = [tuple(t.steps) for t in g.extra] + list({tuple(t.steps) for t in g.kept})
        assert len(written) == len(set(written)), "a search solution that is already a record is not repeated"
        for j, t in enumerate(g.extra):
            assert t.id == f"{g.problem.id}/search-{j}" and t.meta["origin"] == "search"
            assert t.response == "\n".join(t.steps)
            assert t.meta["first_error"] in (None, arith.first_error(g.problem, t.steps))
            for i, v in enumerate(t.step_labels):
                if v is not None:
                    assert (v > 0) == TASK.check_steps(g.problem, t.steps)[i]


def test_truth_labels(problems):
    groups = groups_for(problems)
    apply_labels("truth", groups, Labels, None, TASK, "\n")
    t = groups[0].kept[1]
    assert t.step_labels == [1.0 if ok else 0.0 for ok in TASK.check_steps(groups[0].problem, t.steps)]
    assert 0.0 in t.step_labels
