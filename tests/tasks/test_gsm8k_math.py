"""GSM8K and MATH-500 parsing on the real files beside the repo, and the generic jsonl task."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from reasoner.errors import DataError, UserError
from reasoner.grading import extract_answer, get_grader
from reasoner.tasks import get_task
from reasoner.tasks.gsm8k import parse_solution, strip_calculator

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "gsm8k" / "test.jsonl").exists(), reason="../shared/data absent")


@dataclass
class Cfg:
    name: str = "jsonl"
    path: str | None = None
    split: str = "train"
    limit: int | None = None
    prompt_field: str | None = None
    answer_field: str | None = None
    id_field: str | None = None


GSM8K, MATH500, JSONL = get_task("gsm8k"), get_task("math500"), get_task("jsonl")


def test_gsm8k_solution_parsing():
    text = "He sprints 3*3=<<3*3=9>>9 times\nSo he runs 9*60=<<9*60=540>>540 meters\n#### 1,540"
    assert parse_solution(text) == (["He sprints 3*3=9 times", "So he runs 9*60=540 meters"], "1540")
    assert strip_calculator("costs $<<9*2=18>>18") == "costs $18"
    with pytest.raises(ValueError, match="no '#### <answer>' line"):
        parse_solution("no final line")


@needs_data
def test_gsm8k_real_test_split():
    problems = GSM8K.load_problems(Cfg(name="gsm8k", path=str(DATA / "gsm8k"), split="test"))
    assert len(problems) == 1319
    p0, p2 = problems[0], problems[2]
    assert p0.id == "gsm8k-test-0" and p0.source == "gsm8k" and p0.answer == "18"
    assert p0.prompt.startswith("Janet\u2019s ducks lay 16 eggs per day.")
    assert p0.solution_steps == ["Janet sells 16 - 3 - 4 = 9 duck eggs a day.",
                                 "She makes 9 * 2 = $18 every day at the farmer\u2019s market."]
    assert p2.answer == "70000"
    assert p2.solution_steps == [
        "The cost of the house and repairs came out to 80,000+50,000=$130,000",
        "He increased the value of the house by 80,000*1.5=120,000",
        "So the new value of the house is 120,000+80,000=$200,000",
        "So he made a profit of 200,000-130,000=$70,000",
    ]
    assert problems[146].answer == "2125"                      # "#### 2,125"
    assert GSM8K.format_solution(p0) == (
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
        "She makes 9 * 2 = $18 every day at the farmer\u2019s market.\nAnswer: 18")
    grade = get_grader(GSM8K.grader)
    for p in problems[:20]:                                    # gold solutions grade as correct
        assert grade(extract_answer(GSM8K.format_solution(p), GSM8K.answer_style), p.answer)
    assert "<<" not in "".join(s for p in problems for s in p.solution_steps)


@needs_data
def test_gsm8k_train_file_and_limit():
    problems = GSM8K.load_problems(Cfg(name="gsm8k", path=str(DATA / "gsm8k" / "train.jsonl"), limit=2))
    assert [p.id for p in problems] == ["gsm8k-train-0", "gsm8k-train-1"]
    assert problems[0].answer == "72"
    assert problems[0].solution_steps == ["Natalia sold 48/2 = 24 clips in May.",
                                          "Natalia sold 48+24 = 72 clips altogether in April and May."]


def test_gsm8k_bad_row(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "1 + 1 = 2\n#### 2"}) + "\n"
                 + json.dumps({"question": "q2", "answer": "no final"}) + "\n")
    with pytest.raises(DataError, match=r"g.jsonl:2: field 'answer': no '#### <answer>' line"):
        GSM8K.load_problems(Cfg(name="gsm8k", path=str(f)))


@needs_data
def test_math500_real_file():
    problems = MATH500.load_problems(Cfg(name="math500", path=str(DATA / "math500")))
    assert len(problems) == 500
    p0, p1 = problems[0], problems[1]
    assert p0.id == "test/precalculus/807.json" and p0.source == "math500"
    assert p0.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert p0.meta == {"subject": "Precalculus", "level": 2}
    assert len(p0.solution_steps) == 5 and p0.solution_steps[0].startswith("We have that $r = \\sqrt{0^2 + 3^2} = 3.$")
    assert p0.solution_steps[-1] == "Therefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$"
    assert (p1.id, p1.answer, len(p1.solution_steps)) == ("test/intermediate_algebra/1994.json", "p - q", 1)
    assert problems[2].answer == "\\frac{14}{3}"
    assert MATH500.step_separator == "\n\n" and MATH500.grader == "math"
    assert MATH500.split_steps(MATH500.format_solution(p0)) == p0.solution_steps
    grade = get_grader("math")
    for p in problems[:5]:
        assert grade(extract_answer(MATH500.format_solution(p), MATH500.answer_style), p.answer)
    assert grade("(3, \\pi/2)", p0.answer) and grade("\\dfrac{14}{3}", problems[2].answer)


def test_math500_format_adds_box_when_missing():
    assert MATH500.format_solution(["a", "b"], "5") == "a\n\nb\n\nThe final answer is $\\boxed{5}$."


# ----------------------------------------------------------------------------- generic jsonl

def _write(tmp_path, rows, name="probs.jsonl") -> str:
    f = tmp_path / name
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(f)


def test_jsonl_custom_fields_and_numeric_answer(tmp_path):
    path = _write(tmp_path, [{"q": "1+1?", "a": 2, "key": "x1", "level": 3},
                             {"q": "half?", "a": 0.5, "key": "x2"}, {"q": "three?", "a": 3.0, "key": 7}])
    problems = JSONL.load_problems(Cfg(path=path, prompt_field="q", answer_field="a", id_field="key"))
    assert [(p.id, p.prompt, p.answer) for p in problems] == [("x1", "1+1?", "2"), ("x2", "half?", "0.5"),
                                                              ("7", "three?", "3")]
    assert problems[0].source == "probs.jsonl" and problems[0].meta == {"level": 3}
    default_ids = JSONL.load_problems(Cfg(path=_write(tmp_path, [{"prompt": "p", "answer": "1"}], "d.jsonl")))
    assert default_ids[0].id == "d-0"
    assert JSONL.format_solution(["1 + 1 = 2"], "2") == "1 + 1 = 2\nAnswer: 2"


@pytest.mark.parametrize("rows, cfg, match", [
    ([{"prompt": "p", "answer": "1"}, {"prompt": "p"}], {}, r"probs.jsonl:2: field 'answer': missing"),
    ([{"question": "p", "answer": "1"}], {}, r"probs.jsonl:1: field 'prompt': missing"),
    ([{"prompt": "  ", "answer": "1"}], {}, r"probs.jsonl:1: field 'prompt': is empty"),
    ([{"prompt": "p", "answer": None}], {}, r"probs.jsonl:1: field 'answer': expected a string or number"),
    ([{"prompt": "p", "answer": "1", "id": "a"}, {"prompt": "q", "answer": "2", "id": "a"}], {},
     r"probs.jsonl:2: field 'id': duplicate id 'a'"),
    ([{"prompt": "p", "answer": "1"}], {"id_field": "uid"}, r"probs.jsonl:1: field 'uid': missing"),
])
def test_jsonl_errors_name_file_line_field(tmp_path, rows, cfg, match):
    with pytest.raises(DataError, match=match):
        JSONL.load_problems(Cfg(path=_write(tmp_path, rows), **cfg))


def test_jsonl_needs_path():
    with pytest.raises(UserError, match="data.path is required"):
        JSONL.load_problems(Cfg())
