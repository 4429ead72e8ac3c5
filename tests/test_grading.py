"""Answer extraction, normalisation, graders, and the time limit around math-verify."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reasoner.errors import UserError
from reasoner.grading import (
    GRADERS, extract_answer, get_grader, grade_exact, grade_math, grade_numeric, grade_response,
    normalize_answer, normalize_number, run_with_timeout,
)


@pytest.mark.parametrize("text, style, expected", [
    ("7 + 5 = 12\nAnswer: 12\nAnswer: 32", "answer", "32"),            # last occurrence
    ("The answer: 3.5.", "answer", "3.5"),                             # sentence period dropped
    ("Natalia sold 72 clips.\n#### 1,234", "gsm8k", "1,234"),
    ("so \\boxed{\\frac{1}{\\sqrt{2}}} or \\boxed{\\left(3, \\frac{\\pi}{2}\\right)}.", "boxed",
     "\\left(3, \\frac{\\pi}{2}\\right)"),                             # nested braces, last box
    ("$\\boxed{\\{1, 2\\}}$", "boxed", "\\{1, 2\\}"),                   # escaped braces
    ("\\fbox{7}", "boxed", "7"),
    ("Answer: $\\boxed{5}$.", "answer", "5"),                          # boxed answer line unwrapped
    ("#### 4\nthen \\boxed{5}", "auto", "5"),                          # auto prefers boxed
    ("#### 4\nAnswer: 6", "auto", "4"),                                # then ####
    ("so Answer: 6", "auto", "6"),
    ("the value is 1,234 or -5.5", "number", "-5.5"),
    ("The answer is 42", "auto", "42"),                                # committed in prose
    ("So, the final answer is 30,000.\nThanks", "auto", "30,000"),
    ("The answer is 42", "answer", None),                              # the strict style wants "Answer:"
    ("I think it is 42", "auto", None),                                # no last-number fallback by default
    ("", "auto", None),
])
def test_extract_answer(text, style, expected):
    assert extract_answer(text, style) == expected


def test_extract_answer_fallback_and_bad_style():
    assert extract_answer("I think it is 42 apples", fallback_last_number=True) == "42"
    assert extract_answer("no numbers", fallback_last_number=True) is None
    assert extract_answer(None) is None
    with pytest.raises(UserError, match="answer style 'xml' is unknown"):
        extract_answer("x", "xml")


@pytest.mark.parametrize("raw, expected", [
    ("1,234.50", "1234.5"), ("$18", "18"), ("\\$1,000", "1000"), ("10%", "10"), ("10\\%", "10"),
    ("18.", "18"), ("3/4", "0.75"), ("\\frac{3}{4}", "0.75"), ("\\dfrac12", "0.5"), ("-\\frac{1}{2}", "-0.5"),
    ("1/3", "0.3333333333333333"), ("+7", "7"), ("-0", "0"), ("1e3", "1000"), ("\\$32,\\!348", "32348"),
    ("0.50", "0.5"), ("abc", None), ("1,2", None), ("1/0", None), ("x" * 200, None),
])
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


def test_normalize_answer_groups_equivalent_spellings():
    assert normalize_answer("1,000") == normalize_answer("$1000") == "1000"
    assert normalize_answer("\\left( 3, \\dfrac{\\pi}{2} \\right)") == normalize_answer("(3,\\frac{\\pi}{2})")
    assert normalize_answer(None) is None


def test_grade_numeric_and_exact():
    assert grade_numeric("1,000", "1000") and grade_numeric("18.0", "18") and grade_numeric("$18", "18")
    assert grade_numeric("0.3333333", "1/3") and not grade_numeric("0.33", "1/3")
    assert not grade_numeric("17", "18") and not grade_numeric(None, "18")
    assert grade_numeric("yes", "yes") and not grade_numeric("no", "yes")    # non-numbers: exact
    assert grade_exact(" 32 ", "32") and not grade_exact("32.0", "32") and not grade_exact(None, "32")


@pytest.mark.parametrize("pred, gold", [
    ("0.5", "\\frac{1}{2}"),
    ("\\dfrac12", "\\frac{1}{2}"),
    ("1/2", "\\frac{1}{2}"),
    ("(3,\\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("p-q", "p - q"),
    ("1+x^2", "x^2+1"),
    ("\\frac{\\sqrt2}{2}", "\\sqrt{2}/2"),
    ("32348", "\\$32,\\!348"),
    ("$\\boxed{18}$", "18"),
])
def test_grade_math_equivalent_forms(pred, gold):
    assert grade_math(pred, gold)


@pytest.mark.parametrize("pred, gold", [("3", "4"), ("(3,\\pi)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
                                        ("p+q", "p - q"), (None, "1"), ("", "1")])
def test_grade_math_rejects_different(pred, gold):
    assert not grade_math(pred, gold)


def test_registry_and_grade_response():
    assert set(GRADERS) == {"numeric", "exact", "math"}
    assert get_grader("math") is grade_math
    with pytest.raises(UserError, match="grader 'fuzzy' is unknown"):
        get_grader("fuzzy")
    assert grade_response("1 + 1 = 2\nAnswer: 2", "2", "exact", "answer") == ("2", True)
    assert grade_response("no answer", "2", "exact", "answer") == (None, False)


LONG = "+".join(f"x_{{{i}}}" for i in range(400))   # a 2000+ character expression


@pytest.mark.parametrize("grader", sorted(GRADERS))
@pytest.mark.parametrize("style, response", [("answer", f"So\nAnswer: {LONG}"), ("boxed", f"so \\boxed{{{LONG}}}.")])
def test_long_answer_identical_to_the_gold_is_correct(grader, style, response):
    assert len(LONG) > 2000
    assert extract_answer(response, style) == LONG
    assert grade_response(response, LONG, grader, style) == (LONG, True)


def test_long_answers_never_reach_math_verify(monkeypatch):
    import math_verify

    def refuse(*args, **kwargs):
        raise AssertionError("math-verify parsed an over-long answer")

    monkeypatch.setattr(math_verify, "parse", refuse)
    assert grade_math(LONG, LONG + "+1") is False                   # different and long: not parsed, incorrect
    assert grade_math("\\left(" + LONG + "\\right)", "(" + LONG + ")")  # equal after normalisation


# ----------------------------------------------------------------------------- time limits

def _slow_verify(release: threading.Event):
    def verify(*args, **kwargs):
        release.wait(30)         # "hangs" until the test releases it
        return True
    return verify


def test_slow_math_verify_times_out_in_main_thread(monkeypatch):
    import math_verify

    release = threading.Event()
    monkeypatch.setattr(math_verify, "verify", _slow_verify(release))
    before = signal.getsignal(signal.SIGALRM)
    start = time.monotonic()
    assert grade_math("x+1", "y+2", timeout=0.5) is False
    assert time.monotonic() - start < 3
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0.0
    release.set()


def test_slow_math_verify_times_out_off_main_thread(monkeypatch):
    import math_verify

    release = threading.Event()
    monkeypatch.setattr(math_verify, "verify", _slow_verify(release))
    start = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(grade_math, "x+1", "y+2", timeout=0.5).result(timeout=10) is False
    assert time.monotonic() - start < 3
    release.set()                                # let the abandoned worker finish


def test_grader_never_raises(monkeypatch):
    import math_verify

    def boom(*args, **kwargs):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(math_verify, "verify", boom)
    assert grade_math("x+1", "y+2") is False


def test_run_with_timeout_basics():
    assert run_with_timeout(lambda a, b=0: a + b, 1, b=2, timeout=1) == 3
    assert run_with_timeout(time.sleep, 5, timeout=0.2, default="late") == "late"
    with pytest.raises(ZeroDivisionError):
        run_with_timeout(lambda: 1 / 0, timeout=1)
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(run_with_timeout, lambda: 7, timeout=1).result() == 7
        assert pool.submit(run_with_timeout, time.sleep, 3, timeout=0.2, default=-1).result() == -1
