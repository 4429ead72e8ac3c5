"""Put step labels on the kept trajectories of a chunk of problems (labels=none|truth|shepherd|omegaprm).

Trajectories get `step_labels` (soft values in [0, 1], None where unknown) and
`meta["mc_rollouts"]` (rollouts behind each label; 0 = the last step, labelled with the
solution's own outcome). OmegaPRM also returns new trajectories: every popped (state, wrong
rollout) pair whose state is not the root is a solution of its own, written as
`{problem_id}/search-{j}` (j counts them in pop order) with meta["origin"] = "search", so the
prefixes its binary search evaluated are kept -- unless the same steps are already a record;
collected samples carry meta["origin"] = "sample".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reasoner.data import Problem, Trajectory
from reasoner.errors import UserError
from reasoner.labeling import LABELERS
from reasoner.labeling.omegaprm import OmegaParams, OmegaSearch, run_searches
from reasoner.labeling.rollout import PrefixRequest, Rollout, RolloutFn, prefix_text
from reasoner.labeling.shepherd import shepherd_labels

__all__ = ["ProblemGroup", "apply_labels", "omega_params"]


@dataclass
class ProblemGroup:
    """One problem of a chunk: its prompt as sent, all n samples, and the ones selection kept."""

    problem: Problem
    prompt: str
    samples: list[Trajectory]
    kept: list[Trajectory]
    rollouts: int = 0                      # label rollouts spent on this problem
    extra: list[Trajectory] = field(default_factory=list)   # OmegaPRM search solutions


def omega_params(labels_cfg) -> OmegaParams:
    return OmegaParams(rollouts=labels_cfg.rollouts, budget=labels_cfg.budget, alpha=labels_cfg.alpha,
                       beta=labels_cfg.beta, length_scale=labels_cfg.length_scale, c_puct=labels_cfg.c_puct)


def _request(group: ProblemGroup, steps) -> PrefixRequest:
    return PrefixRequest(group.problem.id, group.prompt, group.problem, tuple(steps))


def _label_truth(groups: list[ProblemGroup], task) -> None:
    for g in groups:
        for t in g.kept:
            t.step_labels = [1.0 if ok else 0.0 for ok in task.check_steps(g.problem, t.steps)]


def _label_shepherd(groups: list[ProblemGroup], k: int, rollout_fn: RolloutFn) -> None:
    pairs = [(g, t) for g in groups for t in g.kept]
    results, _ = shepherd_labels([(_request(g, t.steps), t.reward) for g, t in pairs], k, rollout_fn)
    for (g, t), res in zip(pairs, results):
        t.step_labels, t.meta["mc_rollouts"] = res.labels, res.rollouts
    for g in groups:   # prefixes are shared within a problem only (the key holds the problem id)
        prefixes = {tuple(t.steps[:i]) for t in g.kept for i in range(1, len(t.steps))}
        g.rollouts = k * len(prefixes)


def _label_omega(groups: list[ProblemGroup], params: OmegaParams, rollout_fn: RolloutFn, sep: str,
                 on_round=None) -> None:
    searches, owners = [], {}
    for g in groups:
        n = len(g.samples)
        root_mc = sum(t.reward >= 0.5 for t in g.samples) / n if n else 0.0
        wrong = []
        for t in g.kept:
            if t.reward < 0.5:
                wrong.append(Rollout(t.response, tuple(t.steps), False,
                                     int(t.meta.get("num_tokens", len(t.response))), t.pred_answer))
                owners[id(wrong[-1])] = t
        searches.append(OmegaSearch(root_mc, n, wrong, params))
    run_searches(searches, lambda i, steps: _request(groups[i], steps), rollout_fn, params.rollouts, on_round)
    for g, s in zip(groups, searches):
        g.rollouts = s.spent
        for t in g.kept:
            t.step_labels, t.meta["mc_rollouts"] = s.labels_for(t.steps, t.reward)
            t.meta["origin"] = "sample"
        j, seen = 0, {tuple(t.steps) for t in g.kept}
        for found in s.searched:
            if not found.state:   # a rollout of the root is one of the collected samples
                owners[id(found.rollout)].meta["first_error"] = found.first_error
                continue
            r = found.rollout
            if found.state + r.steps in seen:
                continue          # the same solution is already a record (its labels are the same)
            seen.add(found.state + r.steps)
            steps = list(found.state + r.steps)
            t = Trajectory(
                id=f"{g.problem.id}/search-{j}", problem_id=g.problem.id, prompt=g.prompt,
                response=prefix_text("", found.state, sep) + r.text, steps=steps, pred_answer=r.pred_answer,
                reward=1.0 if r.correct else 0.0,
                meta={"origin": "search", "state_steps": len(found.state), "num_tokens": r.num_tokens,
                      "first_error": found.first_error})
            t.step_labels, t.meta["mc_rollouts"] = s.labels_for(steps, t.reward)
            g.extra.append(t)
            j += 1


def apply_labels(name: str, groups: list[ProblemGroup], labels_cfg, rollout_fn: RolloutFn | None, task,
                 sep: str, on_round=None) -> None:
    """Label every group's kept trajectories in place (and fill g.rollouts / g.extra)."""
    if name not in LABELERS:
        raise UserError(f"config: labels '{name}' is unknown (choose from {', '.join(LABELERS)})")
    if name == "none":
        return
    if name == "truth":
        _label_truth(groups, task)
    elif name == "shepherd":
        _label_shepherd(groups, labels_cfg.rollouts, rollout_fn)
    else:
        _label_omega(groups, omega_params(labels_cfg), rollout_fn, sep, on_round)
