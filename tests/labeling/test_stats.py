"""Label statistics and agreement with ground-truth step labels, on hand-made records."""

from __future__ import annotations

from reasoner.data import Trajectory
from reasoner.labeling.stats import label_stats, located_first_error


def traj(tid, steps, labels, rollouts, truth, reward=0.0):
    return Trajectory(id=tid, problem_id="p", prompt="Q\n", response="\n".join(steps), steps=steps,
                      pred_answer=None, reward=reward, step_labels=labels,
                      meta={"mc_rollouts": rollouts, "true_step_labels": truth})


def test_located_first_error():
    assert located_first_error([0.5, 0.25, 0.0, 0.0]) == 2
    assert located_first_error([0.0, 0.0]) == 0
    assert located_first_error([None, 0.0, 0.0]) is None      # step 0 unknown: not pinned
    assert located_first_error([0.5, None, 0.0]) is None
    assert located_first_error([1.0, 1.0]) is None


def test_label_stats_by_hand():
    a = traj("p/0", ["s1", "s2", "s3"], [0.5, 0.0, 0.0], [4, 4, 0], [True, False, False])
    b = traj("p/1", ["s1", "t2", "t3"], [0.5, 0.25, 1.0], [4, 4, 0], [True, False, False], reward=1.0)
    c = traj("p/2", ["u1", "u2"], [None, 0.0], [None, 0], [False, False])
    s = label_stats([a, b, c], rollouts=16)
    assert s["labelled_trajectories"] == 3 and s["fully_labelled_trajectories"] == 2
    assert s["steps"] == 8 and s["labelled_steps"] == 7 and s["estimated_steps"] == 4
    # estimated: a (s1) 0.5 vs T ok, (s1,s2) 0 vs F ok; b (s1) dup, (s1,t2) 0.25 vs F wrong
    assert s["unique_estimated_prefixes"] == 3 and s["estimated_steps_per_100_rollouts"] == 25.0
    agr = s["agreement"]
    assert agr["estimated_steps"] == 0.75
    assert agr["unique_estimated_prefixes"] == round(2 / 3, 4)
    assert agr["confusion_estimated"] == {"true_pos": 2, "false_pos": 1, "true_neg": 1, "false_neg": 0}
    # all labelled: estimated 3/4 right, outcomes a ok, b wrong (1.0 vs F), c ok -> 5/7
    assert agr["all_labelled_steps"] == round(5 / 7, 4)
    # first errors: a located 1 == true 1; b none located; c none located (step 0 unknown)
    assert agr["first_error"]["wrong_solutions"] == 3
    assert agr["first_error"]["located"] == 1 and agr["first_error"]["located_correct"] == 1
    assert agr["correct_estimated_steps_per_100_rollouts"] == 18.75
    assert agr["first_errors_found_per_100_rollouts"] == 6.25


def test_no_truth_no_agreement():
    t = traj("p/0", ["a"], [1.0], [0], None)
    t.meta.pop("true_step_labels")
    assert "agreement" not in label_stats([t])
