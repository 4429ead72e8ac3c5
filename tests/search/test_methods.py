"""Every search method finds the known best path of the mock world, and counts its budget right."""

from __future__ import annotations

import pytest

from reasoner.errors import UserError
from reasoner.search import SEARCH_METHODS, SearchTask, check_params, resolve_params
from tests.search.mocks import RIGHT, WRONG, ConstantScorer, LineScorer, MockPolicy

TASK = SearchTask(step_separator="\n", answer_style="answer")
PROMPTS = ["Q1\n", "Q2\n", "Q3\n"]
GUIDED = ["best_of_n", "weighted_best_of_n", "prm_min_max", "prm_min_vote", "prm_last_max", "prm_last_vote",
          "beam", "dvts", "value_beam", "mcts"]


def run(name, n, scorer=None, prompts=PROMPTS, policy=None, **params):
    policy = policy or MockPolicy()
    scorer = scorer if scorer is not None else (LineScorer() if SEARCH_METHODS[name].needs_scorer else None)
    results = SEARCH_METHODS[name](prompts, policy, scorer, resolve_params(name, params), TASK, n)
    return results, policy, scorer


@pytest.mark.parametrize("name", GUIDED)
def test_scorer_guided_methods_find_the_best_path(name):
    results, _, _ = run(name, 16, seed=3)
    assert [r.answer for r in results] == [RIGHT] * len(PROMPTS)
    assert all(r.response.endswith(f"Answer: {RIGHT}") for r in results)


def test_majority_vote_follows_the_likelier_wrong_answer():
    results, _, _ = run("majority", 16, seed=3)
    assert [r.answer for r in results] == [WRONG] * len(PROMPTS)


@pytest.mark.parametrize("name", sorted(SEARCH_METHODS))
@pytest.mark.parametrize("n", [1, 2, 5])
def test_budget_counts_every_generated_sequence_and_token(name, n):
    results, policy, _ = run(name, n, seed=1)
    assert sum(r.generations for r in results) == policy.sequences > 0
    assert sum(r.generated_tokens for r in results) == policy.tokens
    assert all(r.answer in (RIGHT, WRONG) for r in results)


@pytest.mark.parametrize("name", ["majority", "best_of_n", "weighted_best_of_n", "prm_min_max"])
def test_sampling_methods_spend_exactly_n_samples(name):
    results, policy, _ = run(name, 8, seed=0)
    assert [r.generations for r in results] == [8, 8, 8]
    assert len(policy.calls) == 1 and policy.calls[0][1].n == 8  # one call, the prompt's samples share a prefill


def test_beam_spends_n_step_samples_per_round_in_one_call_and_one_scorer_call():
    results, policy, scorer = run("beam", 8, width=4, seed=0)
    # 3 lines per solution: 3 rounds of 8 step samples per problem
    assert [r.generations for r in results] == [24, 24, 24]
    assert len(policy.calls) == 3 and len(scorer.calls) == 3
    round2 = policy.calls[1]
    assert round2[1].n == 4 and round2[1].stop == ["\n"]
    assert len(round2[0]) == 2 * len(PROMPTS)  # 8 // 4 = 2 beams kept per problem, each expanded 4 times


def test_dvts_runs_n_over_width_subtrees():
    results, policy, _ = run("dvts", 8, width=4, seed=0)
    assert [r.generations for r in results] == [24, 24, 24]
    assert all(len(r.candidates) <= 2 for r in results)  # one final answer per subtree


def test_value_beam_uses_b_squared_candidates():
    results, policy, _ = run("value_beam", 9, seed=0)  # B = 3
    assert [r.generations for r in results] == [27, 27, 27]
    assert all(len(set(prompts)) <= 3 * len(PROMPTS) for prompts, _ in policy.calls)  # at most B beams kept


def test_mcts_rollouts_are_the_budget_and_a_short_budget_still_answers():
    results, policy, _ = run("mcts", 1, expand=4, seed=0)
    # one expansion of the root (4 step samples), then the best path completed by one rollout
    assert [r.generations for r in results] == [5, 5, 5]
    assert all(r.answer is not None for r in results)
    results, _, _ = run("mcts", 6, expand=2, seed=0)
    assert all(r.generations <= 6 * 2 for r in results)


def test_ties_go_to_the_first_candidate():
    results, _, _ = run("best_of_n", 6, scorer=ConstantScorer(), seed=5)
    for r in results:
        assert r.response == r.candidates[0]["response"]
    results, _, _ = run("beam", 4, scorer=ConstantScorer(), seed=5)
    assert all(r.response == r.candidates[0]["response"] for r in results)


def test_duplicate_candidates_are_merged():
    same = lambda done, rng, greedy: "good 1" if not done else ("good 2" if len(done) == 1 else "Answer: 42")
    for name in ("beam", "dvts", "mcts", "value_beam", "weighted_best_of_n"):
        results, _, _ = run(name, 8, policy=MockPolicy(same), seed=0)
        assert [r.answer for r in results] == [RIGHT] * 3
        if name in ("beam", "value_beam", "mcts"):
            assert all(len(r.candidates) == 1 for r in results)  # 8 identical finished paths -> 1
        if name == "weighted_best_of_n":
            assert all(len(r.candidates) == 8 for r in results)  # duplicates are votes there


def test_a_policy_that_never_answers_stops_at_the_token_limit():
    rambling = lambda done, rng, greedy: "more"
    for name in ("beam", "dvts", "mcts", "majority"):
        results, _, _ = run(name, 4, policy=MockPolicy(rambling), max_new_tokens=20, seed=0)
        assert all(r.answer is None and r.generated_tokens <= 4 * 4 * 25 for r in results)


def test_eos_finishes_a_beam_without_an_answer():
    quitter = lambda done, rng, greedy: "good 1" if not done else None
    results, _, _ = run("beam", 4, policy=MockPolicy(quitter), seed=0)
    assert all(r.answer is None and r.response == "good 1\n" for r in results)


def test_unknown_or_bad_params_are_one_line_user_errors():
    with pytest.raises(UserError, match=r"search.params.widht: unknown parameter of search 'beam'"):
        check_params("beam", {"widht": 2})
    with pytest.raises(UserError, match=r"search.params.width: expected int"):
        check_params("beam", {"width": "wide"})
    with pytest.raises(UserError, match=r"must be > 0"):
        check_params("mcts", {"expand": 0})
    with pytest.raises(UserError, match=r"fixes agg=min"):
        check_params("prm_min_max", {"agg": "last"})
    with pytest.raises(UserError, match=r"search 'bem' is unknown"):
        check_params("bem", {})
    assert check_params("beam", {"temperature": 1})["temperature"] == 1.0


def test_resolve_params_fills_from_the_decode_config():
    from reasoner.config import GenerationConfig, ScorerConfig

    p = resolve_params("best_of_n", {}, GenerationConfig(max_new_tokens=33, seed=4, top_p=0.9), ScorerConfig(aggregate="min"))
    assert (p["max_new_tokens"], p["seed"], p["top_p"], p["agg"], p["temperature"]) == (33, 4, 0.9, "min", 0.8)


def test_a_round_is_one_generate_call_even_with_uneven_expansions():
    from reasoner.generation.base import SamplingParams
    from reasoner.search import Budget

    policy = MockPolicy()
    budget = Budget(policy, 2, seed=0)
    out = budget.request([(0, "Q1\n", 3), (1, "Q2\n", 2), (1, "Q3\n", 0)], SamplingParams(stop=["\n"]))
    assert [len(o) for o in out] == [3, 2, 0] and len(policy.calls) == 1
    assert budget.generations == [3, 2] and sum(budget.tokens) == policy.tokens


def test_fallback_answer_is_graded_but_does_not_end_a_partial_path():
    """GSM8K's last-number fallback gives the graded answer of a response; a step that merely
    mentions a number is not a committed answer, so step-level search keeps extending it."""
    from reasoner.tasks import get_task

    task = SearchTask.from_task(get_task("gsm8k"))
    assert task.fallback_last_number and task.answer("3 + 4 = 7") == "7" and not task.committed("3 + 4 = 7")
    assert task.committed("3 + 4 = 7\n#### 7") and task.answer("3 + 4 = 7\n#### 7") == "7"
    assert task.equal("7.0", "7")  # votes group under the task's grader
