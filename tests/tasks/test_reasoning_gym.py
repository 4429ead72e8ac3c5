"""data=reasoning_gym: the task's own score_answer grades (under the time limit, with partial
credit as the RL reward), splits never share a question, the chat prompt asks for a tagged
answer, config errors are one line before anything is generated, weighted mixes, and any task
name works without code changes."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import pytest

pytest.importorskip("reasoning_gym")

from reasoner import config  # noqa: E402
from reasoner.config import RewardConfig  # noqa: E402
from reasoner.errors import UserError  # noqa: E402
from reasoner.grading import extract_answer  # noqa: E402
from reasoner.rl.rewards import RewardModel  # noqa: E402
from reasoner.tasks import get_task  # noqa: E402
from reasoner.tasks import reasoning_gym as rgym  # noqa: E402

TASK = get_task("reasoning_gym")


def data(*overrides: str, command: str = "decode"):
    return config.load(command, ["data=reasoning_gym", *overrides]).data


def problems(*overrides: str, command: str = "decode"):
    return TASK.load_problems(data(*overrides, command=command))


def tagged(answer: str) -> str:
    return f"Let me think.\nDone.\n<answer>{answer}</answer>"


def test_the_tasks_own_score_answer_grades_a_right_and_a_wrong_answer():
    import reasoning_gym

    p = problems("data.task=basic_arithmetic", "data.num_problems=2")[0]
    entry = p.meta["entry"]
    assert p.prompt == entry["question"] and p.answer == entry["answer"] and p.meta["task"] == "basic_arithmetic"
    assert TASK.score(tagged(p.answer), p) == (p.answer, True, 1.0)
    wrong = str(int(p.answer) + 1)
    assert TASK.score(tagged(wrong), p) == (wrong, False, 0.0)
    assert TASK.score(tagged(p.answer + "1"), p).score == pytest.approx(len(p.answer) / (len(p.answer) + 1))
    assert TASK.score(f"it could be {p.answer}", p) == (None, False, 0.0)   # no tag, no commitment: nothing extracted
    assert TASK.score(f"the answer is {p.answer}", p).correct              # a committed answer without tags
    assert TASK.grade(tagged(f"  {p.answer}\n"), p) == (p.answer, True)
    # the very score_answer of the package, on the very entry it generated
    reference = reasoning_gym.create_dataset("basic_arithmetic")
    for guess in (p.answer, "7", p.answer + ".0"):
        assert TASK.score_answer(guess, p) == reference.score_answer(guess, entry)


def test_metadata_travels_with_the_problem_so_puzzles_with_many_answers_score():
    p = problems("data.task=graph_color", "data.num_problems=1", "data.split=train")[0]
    assert p.answer == ""   # graph colouring has no single gold answer
    puzzle = p.meta["entry"]["metadata"]
    coloring = {str(k): v for k, v in puzzle["possible_answer"].items()}
    assert TASK.score(tagged(json.dumps(coloring)), p).correct
    u, v = puzzle["puzzle"]["edges"][0]
    clash = {**coloring, str(v): coloring[str(u)]}
    assert not TASK.score(tagged(json.dumps(clash)), p).correct


def test_partial_credit_is_the_rl_reward_and_correct_needs_a_full_score():
    ps = problems("data.task=prime_factorization", "data.num_problems=40", "data.split=train")
    p = next(q for q in ps if "×" in q.answer)
    product = str(p.meta["entry"]["metadata"]["number"])
    rewards = RewardModel(RewardConfig(), TASK)([p, p, p], ["q"] * 3, [tagged(p.answer), tagged(product), "no tag"],
                                                [[1]] * 3)
    assert rewards.outcome == [1.0, 0.5, 0.0] and rewards.correct == [True, False, False]
    assert rewards.answers == [p.answer, product, None]


def test_scoring_is_time_limited_and_a_scorer_error_is_a_wrong_answer():
    p = problems("data.task=basic_arithmetic", "data.num_problems=1")[0]

    def slow(pred, problem):
        time.sleep(5)
        return 1.0

    def broken(pred, problem):
        raise ValueError("odd input")

    started = time.time()
    assert replace(TASK, scorer=slow).score(tagged(p.answer), p, timeout=0.2) == (p.answer, False, 0.0)
    assert time.time() - started < 2
    assert replace(TASK, scorer=broken).score(tagged(p.answer), p).score == 0.0
    assert replace(TASK, scorer=lambda a, q: float("nan")).score(tagged(p.answer), p).score == 0.0
    assert replace(TASK, scorer=lambda a, q: 3.0).score(tagged(p.answer), p).score == 1.0


def test_a_gold_string_or_grader_override_uses_the_grader():
    p = problems("data.task=graph_color", "data.num_problems=1", "data.split=train")[0]
    coloring = json.dumps({str(k): v for k, v in p.meta["entry"]["metadata"]["possible_answer"].items()})
    assert TASK.grade_answer(coloring, p)              # the Problem: the task's scorer
    assert not TASK.grade_answer(coloring, p.answer)   # a bare string: the grader (exact)
    assert TASK.derive(grader="exact").grade(tagged(coloring), p) == (coloring, False)


def test_the_answer_tag_keeps_multiline_answers():
    grid = "1 2\n3 4"
    assert extract_answer(f"<answer>no</answer> then\n<answer>\n{grid}\n</answer>", "tag") == grid
    assert extract_answer("<answer>3", "tag") is None and extract_answer("<answer> </answer>", "tag") is None
    assert extract_answer("it is 7", "tag", fallback_last_number=True) == "7"
    p = next(q for q in problems("data.task=mini_sudoku", "data.num_problems=3", "data.split=train"))
    assert "\n" in p.answer and TASK.score(f"<answer>\n{p.answer}\n</answer>", p).correct



def test_without_tags_a_committed_answer_still_counts_but_not_a_stray_number():
    """Small chat models ignore the tags; 'Answer: x' or 'the answer is x' is a commitment, a
    number in passing is not (unless the fallback is asked for)."""
    assert extract_answer("3 + 4 = 7\nAnswer: 7", "tag") == "7"
    assert extract_answer("So the final answer is nus.", "tag") == "nus"
    assert extract_answer("<answer>9</answer>\nAnswer: 7", "tag") == "9"   # the tag wins
    assert extract_answer("3 + 4 = 7", "tag") is None


def test_the_instruction_shows_no_example_answer_to_copy():
    from reasoner.prompts import INSTRUCTIONS

    assert "<answer>" in INSTRUCTIONS["reasoning_gym"] and not any(ch.isdigit() for ch in INSTRUCTIONS["reasoning_gym"])

def test_splits_never_share_a_question_and_each_has_its_own_seeds():
    small = ["data.task=basic_arithmetic", "data.task_config={min_terms: 2, max_terms: 2, max_digits: 1}"]
    by_split = {s: problems(*small, f"data.split={s}", "data.num_problems=150") for s in rgym.SPLITS}
    other_seed = problems(*small, "data.split=train", "data.seed=7", "data.num_problems=150")
    questions = {s: {p.prompt for p in ps} for s, ps in by_split.items()}
    assert all(len(ps) == 150 and len(questions[s]) == 150 for s, ps in by_split.items())
    assert not questions["train"] & questions["test"] and not questions["train"] & questions["validation"]
    assert not questions["validation"] & questions["test"]
    assert not {p.prompt for p in other_seed} & (questions["test"] | questions["validation"])
    assert {p.prompt for p in other_seed} != questions["train"]          # another seed, other problems
    for s, ps in by_split.items():
        assert all(rgym.split_of(p.prompt) == s for p in ps) and len({p.id for p in ps}) == 150
    again = problems(*small, "data.split=test", "data.num_problems=150")
    assert [(p.id, p.prompt, p.answer) for p in again] == [(p.id, p.prompt, p.answer) for p in by_split["test"]]
    first = problems(*small, "data.split=test", "data.num_problems=150", "data.limit=10")
    assert [p.prompt for p in first] == [p.prompt for p in by_split["test"][:10]]


def test_a_question_space_smaller_than_asked_for_is_cycled():
    tiny = ["data.task=basic_arithmetic", "data.split=train",
            "data.task_config={min_terms: 2, max_terms: 2, max_digits: 1, operators: ['+'], "
            "allow_negation: false, allow_parentheses: false}"]
    ps = problems(*tiny, "data.num_problems=150")
    distinct = {p.prompt for p in ps}
    assert len(distinct) < 150 and len({p.id for p in ps}) == 150
    assert all("repeat_of" in p.meta for p in ps[len(distinct):])


def test_the_chat_prompt_carries_the_answer_instruction():
    from reasoner.char_tokenizer import build_char_tokenizer
    from reasoner.prompts import build_prompt

    tok = build_char_tokenizer()
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    p = problems("data.task=basic_arithmetic", "data.num_problems=1")[0]
    text = build_prompt(p.prompt, tok, "auto", None, "reasoning_gym")
    assert text.startswith("<system>") and "<answer>" in text and "</answer>" in text
    assert f"<user>{p.prompt}\n<assistant>" in text
    assert build_prompt(p.prompt, tok, "none", None, "reasoning_gym") == p.prompt + "\n"


def test_task_config_reaches_the_generator():
    ps = problems("data.task=basic_arithmetic", "data.task_config.min_terms=4", "data.task_config.max_terms=4",
                  "data.num_problems=5")
    assert [p.meta["entry"]["metadata"]["num_terms"] for p in ps] == [4] * 5


def test_a_weighted_mix_scores_each_problem_with_its_own_task():
    ps = problems("data.task=[basic_arithmetic,chain_sum]", "data.weights=[3,1]",
                  "data.task_config={chain_sum: {min_terms: 5, max_terms: 5}}", "data.num_problems=120",
                  "data.split=train")
    tasks = [p.meta["task"] for p in ps]
    assert 60 < tasks.count("basic_arithmetic") < 115 and tasks.count("chain_sum") > 5
    assert all(p.meta["entry"]["metadata"]["num_terms"] == 5 for p in ps if p.meta["task"] == "chain_sum")
    assert all(TASK.score(tagged(p.answer), p).correct for p in ps)
    assert not any(TASK.score(tagged("x" + p.answer), p).correct for p in ps)
    assert len({p.id for p in ps}) == 120 and ps[0].id.startswith(f"rg-{ps[0].meta['task']}-train-0-")


# Varied tasks: arithmetic, algebra, logic, games, graphs, strings, induction, cognition. Tasks
# with no single gold answer (graph_color, ...) are scored above; game_of_life_halting is left
# out: its score_answer 0.1.25 accepts any non-empty string.
ANY_TASKS = ["basic_arithmetic", "fraction_simplification", "simple_equations", "polynomial_multiplication",
             "knights_knaves", "syllogism", "mini_sudoku", "maze", "tower_of_hanoi", "shortest_path",
             "word_sorting", "number_sequence", "letter_counting", "base_conversion"]


@pytest.mark.parametrize("name", ANY_TASKS)
def test_any_task_name_works_without_code_changes(name):
    ps = problems(f"data.task={name}", "data.num_problems=3", "data.split=train")
    assert len(ps) == 3 and all(p.prompt and p.answer for p in ps)
    for p in ps:
        right = TASK.score(tagged(p.answer), p)
        assert right.correct and right.score == 1.0, (name, p.answer)
        wrong = TASK.score(tagged("certainly not this"), p)
        assert not wrong.correct and 0.0 <= wrong.score < 1.0


@pytest.mark.parametrize("overrides,message", [
    (["data.task=basic_arithmetc"], "unknown reasoning-gym task 'basic_arithmetc' in data.task (did you mean 'basic_arithmetic'?)"),
    (["data.task=[chain_sum,basic_arithmatic]"], "did you mean 'basic_arithmetic'?"),
    (["data.task=composite"], "mix tasks with a list"),
    ([], "data.task is required"),
    (["data.task=basic_arithmetic", "data.task_config.min_digit=2"],
     "unknown key 'data.task_config.min_digit' for reasoning-gym task 'basic_arithmetic' (did you mean 'min_digits'?)"),
    (["data.task=basic_arithmetic", "data.task_config.seed=3"], "data.task_config.seed: set data.seed instead"),
    (["data.task=basic_arithmetic", "data.task_config.min_digits=0"], "min_digits must be positive"),
    (["data.task=basic_arithmetic", "data.min_ops=3"], "data.min_ops does not apply to data=reasoning_gym"),
    (["data.task=basic_arithmetic", "data.path=x.jsonl"], "data.path does not apply to data=reasoning_gym"),
    (["data.task=basic_arithmetic", "data.split=dev"], "data.split must be one of train, validation, test"),
    (["data.task=basic_arithmetic", "data.weights=[1]"], "data.weights mixes a list of tasks"),
    (["data.task=[chain_sum,basic_arithmetic]", "data.weights=[1]"], "data.weights has 1 entries for 2 tasks"),
    (["data.task=[chain_sum,basic_arithmetic]", "data.weights=[1,0]"], "data.weights[1] must be a positive number"),
    (["data.task=[chain_sum,chain_sum]"], "lists a task twice"),
    (["data.task=[chain_sum,basic_arithmetic]", "data.task_config.min_terms=3"], "keyed by task name"),
    (["data.task=[chain_sum,basic_arithmetic]", "data.task_config.chain_sum.min_term=3"],
     "unknown key 'data.task_config.chain_sum.min_term'"),
])
def test_config_errors_are_one_line_at_load(overrides, message):
    with pytest.raises(UserError) as err:
        data(*overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_reasoning_gym_options_do_not_apply_to_other_sources():
    with pytest.raises(UserError, match=r"data.task does not apply to data=arith \(a data=reasoning_gym setting\)"):
        config.load("decode", ["data.task=basic_arithmetic"])


def test_a_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)   # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install 'reasoner\[reasoning-gym\]'"):
        data("data.task=basic_arithmetic")


def test_no_gold_solutions_and_no_step_checker():
    p = problems("data.task=basic_arithmetic", "data.num_problems=1")[0]
    assert not TASK.has_gold_solutions
    with pytest.raises(UserError, match="train_file="):
        TASK.format_solution(p)
    with pytest.raises(UserError, match="no ground-truth step checker"):
        TASK.check_steps(p, ["1 + 1 = 2"])
