"""The arithmetic gym: determinism, disjoint splits, knobs, ground-truth step checking, corruption."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from reasoner.data import Problem
from reasoner.errors import UserError
from reasoner.grading import extract_answer, get_grader
from reasoner.tasks import TASKS, get_task
from reasoner.tasks.arith import (
    check_steps, corrupt_solution, first_error, format_solution, generate_problems, parse_prompt,
    render_prompt, solve,
)


@dataclass
class Cfg:
    """Stand-in for config.DataConfig (only attribute access is used)."""
    name: str = "arith"
    path: str | None = None
    split: str = "train"
    limit: int | None = None
    prompt_field: str | None = None
    answer_field: str | None = None
    id_field: str | None = None
    num_problems: int = 300
    seed: int = 0
    min_ops: int = 2
    max_ops: int = 4
    max_operand: int = 20
    ops: str = "+-*"
    corrupt_fraction: float = 0.0


TASK = get_task("arith")
EXAMPLE = Problem(id="e", prompt="Compute: ((7 + 5) * 3) - 4", answer="32", source="arith")


def test_format_example():
    assert render_prompt(7, [("+", 5), ("*", 3), ("-", 4)]) == EXAMPLE.prompt
    assert parse_prompt(EXAMPLE.prompt) == (7, [("+", 5), ("*", 3), ("-", 4)])
    assert solve(7, [("+", 5), ("*", 3), ("-", 4)]) == [7, 12, 36, 32]
    steps = ["7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "Answer: 32"]
    assert format_solution(steps, "32") == "7 + 5 = 12\n12 * 3 = 36\n36 - 4 = 32\nAnswer: 32"
    assert format_solution(steps[:-1], "32") == format_solution(steps, "32")
    assert check_steps(EXAMPLE, steps) == [True] * 4
    assert (TASK.grader, TASK.answer_style, TASK.step_separator) == ("exact", "answer", "\n")


def test_deterministic_by_seed():
    a = TASK.load_problems(Cfg())
    b = TASK.load_problems(Cfg())
    c = TASK.load_problems(Cfg(seed=1))
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b] == [p.to_dict() for p in generate_problems(300)]
    assert [p.prompt for p in a] != [p.prompt for p in c]
    assert len(a) == 300 and len({p.id for p in a}) == 300 and len({p.prompt for p in a}) == 300


def test_splits_never_overlap():
    train = {p.prompt for s in (0, 1) for p in TASK.load_problems(Cfg(seed=s, num_problems=1000))}
    test = {p.prompt for s in (0, 1) for p in TASK.load_problems(Cfg(seed=s, split="test", num_problems=300))}
    assert len(test) >= 300 and not train & test


def test_gold_solutions_check_and_grade():
    grade = get_grader(TASK.grader)
    for p in TASK.load_problems(Cfg(num_problems=200, ops="+-*/")):
        text = TASK.format_solution(p)
        steps = TASK.split_steps(text)
        assert steps == p.solution_steps
        assert check_steps(p, steps) == [True] * len(steps) and first_error(p, steps) is None
        pred = extract_answer(text, TASK.answer_style)
        assert pred == p.answer and grade(pred, p.answer)


@pytest.mark.parametrize("knobs", [
    dict(min_ops=1, max_ops=1, max_operand=5, ops="+"),          # only 25 such problems exist
    dict(min_ops=3, max_ops=5, max_operand=9, ops="*-"),
    dict(min_ops=2, max_ops=2, max_operand=50, ops="+-*/"),
])
def test_difficulty_knobs_respected(knobs):
    problems = TASK.load_problems(Cfg(num_problems=15, **knobs))
    for p in problems:
        start, ops = parse_prompt(p.prompt)
        assert knobs["min_ops"] <= len(ops) == p.meta["num_ops"] <= knobs["max_ops"]
        assert 1 <= start <= knobs["max_operand"]
        for op, b in ops:
            assert op in knobs["ops"] and 1 <= b <= knobs["max_operand"]
            if op in "*/":
                assert 2 <= b <= 9
        values = solve(start, ops)
        assert all(0 <= v <= 10 * knobs["max_operand"] for v in values)
        assert all(v == int(v) for v in values)   # division is exact


def test_check_steps_processbench_semantics():
    right = ["7 + 5 = 12", "12 * 3 = 36", "36 - 4 = 32", "Answer: 32"]
    assert check_steps(EXAMPLE, ["7 + 5 = 13", "13 * 3 = 39", "39 - 4 = 35", "Answer: 35"]) == [False] * 4
    assert check_steps(EXAMPLE, ["7 + 5 = 12", "12 * 4 = 48", "48 - 4 = 44"]) == [True, False, False]
    assert check_steps(EXAMPLE, ["7 + 5 = 12", "12 + 3 = 15"]) == [True, False]        # wrong op
    assert check_steps(EXAMPLE, ["7 + 5 = 12", "12 * 3 = 36", "Answer: 36"]) == [True, True, False]
    assert check_steps(EXAMPLE, right[:3] + ["Answer: 31"]) == [True, True, True, False]
    assert check_steps(EXAMPLE, right + ["extra"]) == [True] * 4 + [False]
    assert check_steps(EXAMPLE, [" 7+5=12 ", "12 *3= 36"]) == [True, True]          # spacing is free
    assert first_error(EXAMPLE, right[:2]) is None                                    # incomplete, no error
    assert first_error(EXAMPLE, ["garbage"] + right) == 0


def test_corrupted_solutions_have_reported_first_error():
    rng = random.Random(0)
    positions = set()
    for p in TASK.load_problems(Cfg(num_problems=200, ops="+-*/")):
        steps, k = corrupt_solution(p, rng)
        labels = check_steps(p, steps)
        assert labels == [True] * k + [False] * (len(steps) - k)
        assert first_error(p, steps) == k and len(steps) == len(p.solution_steps)
        assert extract_answer("\n".join(steps), "answer") != p.answer
        positions.add(k)
        for step in steps[k + 1:-1]:                 # later steps are right arithmetic on the wrong value
            a, op, b, c = step.replace("=", " ").split()
            assert solve(int(a), [(op, int(b))])[-1] == int(c) and int(c) >= 0
    assert positions == {0, 1, 2, 3}


def test_corrupt_fraction_marks_training_problems():
    clean = TASK.load_problems(Cfg(num_problems=100))
    mixed = TASK.load_problems(Cfg(num_problems=100, corrupt_fraction=0.25))
    bad = [p for p in mixed if p.meta["corrupted"]]
    assert len(bad) == 25
    assert [p.prompt for p in clean] == [p.prompt for p in mixed]
    for p, c in zip(mixed, clean):
        assert p.answer == c.answer                  # grading still uses the true answer
        if p.meta["corrupted"]:
            assert first_error(p, p.solution_steps) == p.meta["first_error"]
            assert not TASK.format_solution(p).endswith(f"Answer: {p.answer}")
        else:
            assert p.solution_steps == c.solution_steps
    test = TASK.load_problems(Cfg(split="test", num_problems=20, corrupt_fraction=0.5))
    assert not any(p.meta["corrupted"] for p in test)


def test_limit_and_validation():
    assert len(TASK.load_problems(Cfg(limit=7))) == 7
    for bad in (dict(ops="+^"), dict(min_ops=0), dict(min_ops=3, max_ops=2), dict(split="dev"),
                dict(corrupt_fraction=1.5), dict(max_operand=0), dict(limit=-1)):
        with pytest.raises(UserError):
            TASK.load_problems(Cfg(**bad))
    with pytest.raises(UserError, match="no train problems exist"):     # a factor must be >= 2
        TASK.load_problems(Cfg(min_ops=1, max_ops=1, max_operand=1, ops="*"))


def test_tiny_space_is_cycled_and_still_disjoint():
    tiny = dict(min_ops=1, max_ops=1, max_operand=5, ops="+")        # 25 problems in all
    train = TASK.load_problems(Cfg(num_problems=400, **tiny))
    test = TASK.load_problems(Cfg(num_problems=30, split="test", **tiny))
    distinct = {p.prompt for p in train}
    assert len(train) == 400 and len({p.id for p in train}) == 400
    assert 15 <= len(distinct) < 25 and not distinct & {p.prompt for p in test}
    assert sum("repeat_of" in p.meta for p in train) == 400 - len(distinct)
    by_id = {p.id: p for p in train}
    assert all(by_id[p.meta["repeat_of"]].prompt == p.prompt for p in train if "repeat_of" in p.meta)


def test_registry():
    assert set(TASKS) == {"arith", "gsm8k", "math500", "jsonl", "reasoning_gym"}
    with pytest.raises(UserError, match="not a known task"):
        get_task("mnist")


def test_task_grade_uses_the_tasks_extraction_grader_and_derived_rules():
    """Task.grade is the one grading path; derive() swaps the grader or the fallback rule."""
    gsm8k, arith = get_task("gsm8k"), get_task("arith")
    assert gsm8k.grade("She has 3 + 4 = 7 apples.", "7") == ("7", True)   # GSM8K's last-number fallback
    assert arith.grade("She has 3 + 4 = 7 apples.", "7") == (None, False)  # the gym wants "Answer: x"
    assert arith.derive(fallback_last_number=True).grade("it is 7", "7") == ("7", True)
    assert arith.grade("Answer: 7.0", "7").correct is False and arith.derive(grader="numeric").grade("Answer: 7.0", "7").correct
    assert arith.derive() is arith and arith.grader == "exact"
    with pytest.raises(UserError, match="grader 'fuzzy' is unknown"):
        arith.derive(grader="fuzzy")
