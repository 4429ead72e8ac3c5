"""Answer extraction and graders (numeric, exact, math-verify), each under a time limit.

Model output is only ever parsed, never evaluated. A grader takes the *extracted* answer and the
gold answer: `grader(pred, gold, timeout=5.0) -> bool`; a missing answer, a parse failure or a
timeout grade as incorrect, and graders never raise.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, Callable, NamedTuple

from reasoner.errors import UserError

DEFAULT_TIMEOUT = 5.0
MAX_ANSWER_CHARS = 1000     # longest answer handed to math-verify (bounds parser work, not correctness)
ANSWER_STYLES = ("auto", "answer", "gsm8k", "boxed", "number", "tag")
_STYLE_ALIASES = {"gym": "answer", "arith": "answer", "hash": "gsm8k", "math": "boxed", "last_number": "number"}


# --------------------------------------------------------------------------- time limits

class _Timeout(BaseException):
    """Raised by our SIGALRM handler; BaseException so library `except Exception` cannot eat it."""


def _alarm_usable() -> bool:
    """signal.setitimer works only in the main thread, and must not clobber an outer alarm."""
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0.0)


def _run_with_alarm(fn, args, kwargs, timeout: float, default):
    def on_alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return fn(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return default
    finally:
        signal.signal(signal.SIGALRM, old)


def _run_in_thread(fn, args, kwargs, timeout: float, default):
    """Off the main thread no signal can interrupt fn: run it in a daemon thread and stop waiting.

    Python cannot kill a thread, so a timed-out call keeps running in the background until it
    finishes; being a daemon it never blocks interpreter exit.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True, name="reasoner-grading").start()
    if not done.wait(timeout):
        return default
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_with_timeout(fn: Callable, *args, timeout: float | None = DEFAULT_TIMEOUT, default: Any = None, **kwargs):
    """fn(*args, **kwargs), or `default` if it takes longer than `timeout` seconds.

    In the main thread SIGALRM interrupts fn (between bytecodes); elsewhere, or when another
    alarm is already pending, fn runs in a daemon thread that is abandoned on timeout.
    Exceptions raised by fn propagate. timeout None or <= 0 means no limit.
    """
    if timeout is None or timeout <= 0:
        return fn(*args, **kwargs)
    if _alarm_usable():
        return _run_with_alarm(fn, args, kwargs, float(timeout), default)
    return _run_in_thread(fn, args, kwargs, float(timeout), default)


# --------------------------------------------------------------------------- extraction

def _boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...} / \\fbox{...} (nested braces balanced), or \\boxed 5."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\b", text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                c = text[j]
                if c == "\\":
                    j += 2          # \{ and \} are literal braces, not grouping
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        out.append(text[i + 1:j])
                        break
                j += 1
        elif i > m.end():       # "\boxed 5": the next token
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                out.append(tok.group(0))
    return out


_ANSWER_RE = re.compile(r"(?im)\banswer\s*:[ \t]*(.+?)[ \t]*$")
_HASH_RE = re.compile(r"(?m)####[ \t]*(.+?)[ \t]*$")
# "The answer is 30,000." / "the final answer is $\frac{1}{2}$." -- how chat models commit in prose
_PROSE_RE = re.compile(r"(?i)\b(?:final\s+)?answer\s+is\s*:?\s*(.+?)\s*(?:\.(?:\s|$)|\n|$)")
_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.S)
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")


def _clean(ans: str) -> str | None:
    """Trim whitespace and a sentence-final period; unwrap an answer that is wholly \\boxed."""
    ans = ans.strip()
    boxed = _boxed_contents(ans)
    if len(boxed) == 1 and re.fullmatch(r"\$?\\(?:boxed|fbox)\s*\{.*\}\$?\.?", ans, re.S):
        ans = boxed[0].strip()
    if ans.endswith(".") and not ans.endswith(".."):
        ans = ans[:-1].rstrip()
    return ans or None


def _last(regex: re.Pattern, text: str) -> str | None:
    found = regex.findall(text)
    return found[-1] if found else None


def extract_answer(text: str | None, style: str = "auto", fallback_last_number: bool = False) -> str | None:
    """The final answer written in a response, or None.

    style: "answer" (last "Answer: x" line, the gym / instruction format), "gsm8k" (last "#### x"),
    "boxed" (last \\boxed{...}), "number" (last number), "tag" (the last <answer>...</answer>, as
    written but for outer whitespace: reasoning-gym answers may span lines, e.g. a grid; without
    tags, a committed "Answer: x" line or "the answer is x" as small chat models write), or "auto"
    (boxed, then ####, then Answer:, then "the (final) answer is x"). `fallback_last_number` takes the last number when the style finds nothing; off by
    default because it rewards answers the model never committed to.
    """
    if not text:
        return None
    style = _STYLE_ALIASES.get(style, style)
    if style not in ANSWER_STYLES:
        raise UserError(f"answer style '{style}' is unknown (choose from {', '.join(ANSWER_STYLES)})")
    if style == "tag":
        tagged = _last(_TAG_RE, text)
        if tagged is not None:
            return tagged.strip() or None
        committed = _last(_ANSWER_RE, text) or _last(_PROSE_RE, text)   # small models skip the tags
        if committed is not None:
            return _clean(committed)
        if not fallback_last_number:
            return None
    found: str | None = None
    if style in ("auto", "boxed"):
        boxed = _boxed_contents(text)
        found = boxed[-1] if boxed else None
    if found is None and style in ("auto", "gsm8k"):
        found = _last(_HASH_RE, text)
    if found is None and style in ("auto", "answer"):
        found = _last(_ANSWER_RE, text)
    if found is None and style == "auto":
        found = _last(_PROSE_RE, text)
    if found is None and (style == "number" or fallback_last_number):
        found = _last(_NUMBER_RE, text)
    if found is None:
        return None
    return _clean(found)


# --------------------------------------------------------------------------- normalisation

_FRAC_RE = re.compile(r"^(-?)\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}$")
_FRAC_SHORT_RE = re.compile(r"^(-?)\\[dt]?frac\s*(\d)(\d)$")
_SLASH_RE = re.compile(r"^(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)$")
_PLAIN_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")


def _strip_decorations(s: str) -> str:
    s = s.strip()
    s = re.sub(r"\\[!,;:]|\\ |~", "", s)                         # LaTeX spacing
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.strip().rstrip(".").strip()
    if s.startswith("+"):
        s = s[1:]
    return s


def to_fraction(s: str | None) -> Fraction | None:
    """The exact value of a plain numeric answer ("1,234.50", "$18", "3/4", "\\frac{3}{4}", "10%")."""
    if s is None or len(s) > 100:
        return None
    s = _strip_decorations(s)
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    for regex in (_FRAC_RE, _FRAC_SHORT_RE):
        m = regex.match(s)
        if m:
            num, den = int(m.group(2)), int(m.group(3))
            return None if den == 0 else Fraction(-num if m.group(1) else num, den)
    m = _SLASH_RE.match(s)
    if m:
        den = Fraction(m.group(2))
        return None if den == 0 else Fraction(m.group(1)) / den
    if _PLAIN_RE.match(s):
        return Fraction(s)
    return None


def _format_fraction(f: Fraction) -> str:
    """Integers as integers, terminating decimals exactly, others as a 17-digit float."""
    if f.denominator == 1:
        return str(f.numerator)
    den = f.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return repr(float(f))
    with localcontext() as ctx:
        ctx.prec = 60
        d = Decimal(f.numerator) / Decimal(f.denominator)
    return format(d.normalize(), "f")


def normalize_number(s: str | None) -> str | None:
    """Canonical string of a numeric answer ("1,234.50" -> "1234.5", "3/4" -> "0.75"), else None.

    "$", "%" and a trailing period are dropped ("10%" -> "10": percent answers are compared as
    written, not divided by 100).
    """
    f = to_fraction(s)
    return None if f is None else _format_fraction(f)


def normalize_answer(s: str | None) -> str | None:
    """A key under which equivalent-looking answers group (majority vote): numbers canonical,
    otherwise LaTeX spacing, $, \\left/\\right and \\dfrac variants removed."""
    if s is None:
        return None
    num = normalize_number(s)
    if num is not None:
        return num
    t = _strip_decorations(s)
    t = re.sub(r"\\(?:left|right)\b", "", t)
    t = re.sub(r"\\[dt]frac", r"\\frac", t)
    t = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", t)
    return re.sub(r"\s+", "", t)


# --------------------------------------------------------------------------- graders

def grade_exact(pred: str | None, gold: str, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """String equality after trimming and collapsing whitespace (the gym's grader)."""
    if pred is None or gold is None:
        return False
    return " ".join(str(pred).split()) == " ".join(str(gold).split())


def grade_numeric(pred: str | None, gold: str, timeout: float | None = DEFAULT_TIMEOUT,
                  rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Numeric equality within tolerance ("1,000" == "1000.0"); non-numbers fall back to exact."""
    if pred is None or gold is None:
        return False
    a, b = to_fraction(pred), to_fraction(gold)
    if a is None or b is None:
        return grade_exact(pred, gold)
    return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b)))


_MV_NOISE = ("Timeout is disabled",)


class _DropTimeoutDisabledWarning(logging.Filter):
    """We pass timeout=None to math-verify on purpose (we time-limit it ourselves)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_MV_NOISE)


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


def _mv_parse(s: str) -> list:
    """math-verify parse of an answer string; bare answers are wrapped so LaTeX extraction sees them.

    math-verify's own timeout is disabled (None): it uses signal.alarm, which would cancel ours
    and raises off the main thread.
    """
    import math_verify

    delimited = "\\boxed" in s or re.search(r"(?<!\\)\$", s) is not None
    tries = [s] if delimited else [f"${s}$", f"\\boxed{{{s}}}", s]
    for text in tries:
        parsed = math_verify.parse(text, parsing_timeout=None)
        if parsed:
            return parsed
    return []


def _math_equal(pred: str, gold: str) -> bool:
    import math_verify

    g, p = _mv_parse(gold), _mv_parse(pred)
    if not g or not p:
        return False
    return bool(math_verify.verify(g, p, timeout_seconds=None))


def grade_math(pred: str | None, gold: str, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """Mathematical equivalence via math-verify (\\frac{1}{2} == 0.5 == \\dfrac12), time-limited.

    An answer equal to the gold after normalisation is correct at any length; only answers over
    MAX_ANSWER_CHARS are kept from math-verify's parser (they grade incorrect unless equal).
    """
    if pred is None or gold is None:
        return False
    if grade_exact(pred, gold) or normalize_answer(pred) == normalize_answer(gold):
        return True
    a, b = to_fraction(pred), to_fraction(gold)
    if a is not None and b is not None:
        return abs(a - b) <= max(1e-9, 1e-6 * max(abs(a), abs(b)))
    if max(len(pred), len(gold)) > MAX_ANSWER_CHARS:
        return False
    try:
        return bool(run_with_timeout(_math_equal, pred, gold, timeout=timeout, default=False))
    except Exception:  # a parser bug on odd input is a wrong answer, not a crash
        return False


GRADERS: dict[str, Callable[..., bool]] = {"numeric": grade_numeric, "exact": grade_exact, "math": grade_math}


def get_grader(name: str) -> Callable[..., bool]:
    """Grader by name: `grader(pred, gold, timeout=5.0) -> bool`."""
    if name not in GRADERS:
        raise UserError(f"grader '{name}' is unknown (choose from {', '.join(GRADERS)})")
    return GRADERS[name]


class Graded(NamedTuple):
    """A graded response: the answer extracted from it (None: none found) and the verdict."""

    pred: str | None
    correct: bool


def grade_answer(pred: str | None, gold: str, grader: str = "exact", timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """Whether an extracted answer matches the gold under the named grader (no answer: False)."""
    return pred is not None and bool(get_grader(grader)(pred, gold, timeout=timeout))


def grade_response(response: str, gold: str, grader: str = "exact", style: str = "auto",
                   fallback_last_number: bool = False, timeout: float | None = DEFAULT_TIMEOUT) -> Graded:
    """Extract the answer of a whole response and grade it against a gold string (stages grade
    through reasoner.tasks.Task.score / grade, which do this with the task's style, fallback rule
    and grader, or the task's own scorer when the gold is a Problem)."""
    pred = extract_answer(response, style, fallback_last_number)
    return Graded(pred, grade_answer(pred, gold, grader, timeout))
