"""Selection rules: answer equivalence groups, majority, best, weighted vote, and their tie-breaks."""

from __future__ import annotations

from reasoner.grading import grade_numeric
from reasoner.search import SearchTask
from reasoner.search.select import choose, group_answers, pick_best, pick_majority, pick_weighted


def numeric(a, b):
    return grade_numeric(a, b)


def test_equivalent_answers_share_a_group():
    assert group_answers(["1/2", "0.5", None, "3", "0.50"], numeric) == [0, 0, None, 1, 0]


def test_majority_counts_groups_and_breaks_ties_by_first_appearance():
    assert pick_majority([1, 0, 0, 1]) == 0  # 1 and 0 tie at two votes; group 1 appeared first
    assert pick_majority([None, 2, 2, 1]) == 1
    assert pick_majority([None, None]) == 0


def test_best_prefers_answered_candidates_and_the_first_on_ties():
    assert pick_best(["1", None, "2"], [0.5, 0.9, 0.5]) == 0
    assert pick_best([None, None], [0.1, 0.3]) == 1


def test_weighted_vote_sums_scores_per_answer():
    # answer A: 0.3 + 0.3 = 0.6 beats answer B: 0.5; the best member of A is returned
    assert pick_weighted([0, 1, 0], [0.3, 0.5, 0.35]) == 2
    assert pick_weighted([0, 1], [0.5, 0.5]) == 0  # tie -> group seen first


def test_choose_groups_by_the_task_grader():
    task = SearchTask(answer_style="answer", equal=numeric)
    answers = ["0.5", "1/2", "7"]
    assert choose("majority", answers, [0, 0, 0], task.same) == 0
    assert choose("vote", answers, [0.3, 0.3, 0.5], task.same) == 0
    assert choose("best", answers, [0.3, 0.3, 0.5], task.same) == 2
