"""The arithmetic gym: seeded multi-step integer problems with ground-truth step labels.

Small enough that a ~1M-parameter character-level model learns it on a CPU in minutes, and every
step of a solution can be checked exactly, so PRM labels, search and RL can be tested against
the truth.

Format (one problem, 3 operations, evaluated left to right as the parentheses say)::

    prompt:    Compute: ((7 + 5) * 3) - 4
    solution:  7 + 5 = 12
               12 * 3 = 36
               36 - 4 = 32
               Answer: 32

Numbers: the start value and every operand are in [1, max_operand]; a multiplier is in
[2, min(9, max_operand)]; "/" (only if listed in `ops`) divides exactly by [2, 9]; every
intermediate value stays in [0, 10 * max_operand]. Problem.solution_steps holds the op lines
*and* the final "Answer: n" line, because in the gym the answer line is a judged step too.

Splits: a problem is in "test" iff a hash of its prompt falls in a fixed 10% bucket, in
"validation" iff it falls in another 10% bucket, and in "train" otherwise, so the three never
overlap, whatever the seeds and sizes (hyper-parameters are chosen on validation, never on test). Within a split problems are distinct unless the
settings allow fewer problems than asked for; then they are cycled (meta["repeat_of"]).
"""

from __future__ import annotations

import hashlib
import random
import re

from reasoner.data import Problem
from reasoner.errors import UserError

__all__ = [
    "generate_problems", "load_problems", "render_prompt", "parse_prompt", "solve", "gold_steps",
    "check_steps", "first_error", "corrupt_solution", "format_solution", "in_test_split",
]

ALLOWED_OPS = "+-*/"
MAX_FACTOR = 9              # multipliers and divisors stay single-digit
VALUE_SCALE = 10            # intermediate values stay <= VALUE_SCALE * max_operand
TEST_BUCKETS = 10           # 1 in TEST_BUCKETS prompts belongs to the test split (bucket 0) ...
VALIDATION_BUCKET = 1       # ... and 1 in TEST_BUCKETS to the validation split
SPLITS = ("train", "validation", "test")
PROMPT_PREFIX = "Compute: "
_STEP_RE = re.compile(r"^\s*(-?\d+)\s*([-+*/])\s*(-?\d+)\s*=\s*(-?\d+)\s*$")
_ANSWER_RE = re.compile(r"^\s*Answer:\s*(-?\d+)\s*$")

Ops = list[tuple[str, int]]


def _apply(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a // b


def _choices(cur: int, op: str, max_operand: int, max_value: int) -> list[int]:
    """Operands b that keep `cur op b` a small non-negative integer."""
    if op == "+":
        return list(range(1, min(max_operand, max_value - cur) + 1))
    if op == "-":
        return list(range(1, min(max_operand, cur) + 1))
    top = min(MAX_FACTOR, max_operand)
    if op == "*":
        return [b for b in range(2, top + 1) if cur * b <= max_value] if cur > 0 else []
    return [b for b in range(2, top + 1) if cur > 0 and cur % b == 0]


def _draw(rng: random.Random, n_ops: int, max_operand: int, ops: str) -> tuple[int, Ops] | None:
    """One random problem, or None when the chain painted itself into a corner."""
    max_value = VALUE_SCALE * max_operand
    start = rng.randint(1, max_operand)
    cur, chain = start, []
    for _ in range(n_ops):
        options = [(op, c) for op in ops if (c := _choices(cur, op, max_operand, max_value))]
        if not options:
            return None
        op, operands = rng.choice(options)
        b = rng.choice(operands)
        chain.append((op, b))
        cur = _apply(cur, op, b)
    return start, chain


def render_prompt(start: int, ops: Ops) -> str:
    """'Compute: ((7 + 5) * 3) - 4': fully parenthesised, left to right."""
    expr = str(start)
    for i, (op, b) in enumerate(ops):
        expr = f"{'(' + expr + ')' if i else expr} {op} {b}"
    return PROMPT_PREFIX + expr


def parse_prompt(prompt: str) -> tuple[int, Ops]:
    """(start, [(op, operand), ...]) back from a rendered prompt."""
    body = prompt.strip()
    if body.startswith(PROMPT_PREFIX.strip()):
        body = body[len(PROMPT_PREFIX.strip()):]
    tokens = re.findall(r"\d+|[-+*/]", body)
    if len(tokens) < 3 or len(tokens) % 2 == 0 or not all(
            t.isdigit() == (i % 2 == 0) for i, t in enumerate(tokens)):
        raise ValueError(f"not an arith prompt: {prompt!r}")
    return int(tokens[0]), [(tokens[i], int(tokens[i + 1])) for i in range(1, len(tokens), 2)]


def solve(start: int, ops: Ops) -> list[int]:
    """Values after 0, 1, ..., len(ops) operations (values[-1] is the answer)."""
    values = [start]
    for op, b in ops:
        values.append(_apply(values[-1], op, b))
    return values


def gold_steps(start: int, ops: Ops) -> list[str]:
    """The correct solution: one 'a op b = c' line per operation, then 'Answer: n'."""
    values = solve(start, ops)
    steps = [f"{values[i]} {op} {b} = {values[i + 1]}" for i, (op, b) in enumerate(ops)]
    return steps + [f"Answer: {values[-1]}"]


def split_of(prompt: str) -> str:
    """The split a prompt belongs to: fixed hash buckets, so membership depends on the problem alone."""
    bucket = int(hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:8], 16) % TEST_BUCKETS
    return "test" if bucket == 0 else "validation" if bucket == VALIDATION_BUCKET else "train"


def in_test_split(prompt: str) -> bool:
    return split_of(prompt) == "test"


def _validate(num_problems: int, split: str, min_ops: int, max_ops: int, max_operand: int,
              ops: str, corrupt_fraction: float) -> None:
    if split not in SPLITS:
        raise UserError(f"data.split must be one of {', '.join(SPLITS)} for arith (got '{split}')")
    if num_problems < 0:
        raise UserError(f"data.num_problems must be >= 0 (got {num_problems})")
    if min_ops < 1 or max_ops < min_ops:
        raise UserError(f"data.min_ops/max_ops must satisfy 1 <= min_ops <= max_ops (got {min_ops}, {max_ops})")
    if max_operand < 1:
        raise UserError(f"data.max_operand must be >= 1 (got {max_operand})")
    if not ops or any(c not in ALLOWED_OPS for c in ops):
        raise UserError(f"data.ops must be a non-empty subset of '{ALLOWED_OPS}' (got '{ops}')")
    if not 0.0 <= corrupt_fraction <= 1.0:
        raise UserError(f"data.corrupt_fraction must be in [0, 1] (got {corrupt_fraction})")


def _distinct_draws(rng: random.Random, num_problems: int, split: str, min_ops: int, max_ops: int,
                    max_operand: int, ops: str) -> list[tuple[int, Ops]]:
    """Up to num_problems distinct problems of the split; stops early when the space runs dry
    (no new problem in max(2000, 20 * found) draws in a row)."""
    seen: set[str] = set()
    found: list[tuple[int, Ops]] = []
    misses = 0
    while len(found) < num_problems and misses <= max(2000, 20 * len(found)):
        drawn = _draw(rng, rng.randint(min_ops, max_ops), max_operand, ops)
        prompt = render_prompt(*drawn) if drawn else None
        if prompt is None or prompt in seen or split_of(prompt) != split:
            misses += 1
            continue
        misses = 0
        seen.add(prompt)
        found.append(drawn)
    return found


def generate_problems(num_problems: int, seed: int = 0, split: str = "train", min_ops: int = 2,
                      max_ops: int = 4, max_operand: int = 20, ops: str = "+-*",
                      corrupt_fraction: float = 0.0, misconception_rate: float = 0.0,
                      misconception_ops: str = "+-") -> list[Problem]:
    """`num_problems` problems of one split, the same for the same arguments.

    Problems are distinct while the settings allow; a space too small for num_problems (e.g. one
    "+" of operands <= 5) is cycled, and the repeats carry meta["repeat_of"]. With
    corrupt_fraction > 0 (train split only: it is an SFT data knob), that fraction of the problems
    get a corrupted gold solution (meta["corrupted"], meta["first_error"]); their `answer` stays
    the true one. With misconception_rate > 0 (train split only), every step of an op in
    `misconception_ops` that needs a carry or a borrow is written the buggy way with that
    probability (`buggy_result`), as a student who half-learnt the procedure would; problems
    corrupted by corrupt_fraction keep their slip instead.
    """
    _validate(num_problems, split, min_ops, max_ops, max_operand, ops, corrupt_fraction)
    if not 0.0 <= misconception_rate <= 1.0:
        raise UserError(f"data.misconception_rate must be in [0, 1] (got {misconception_rate})")
    if any(c not in "+-" for c in misconception_ops):
        raise UserError(f"data.misconception_ops must be a subset of '+-' (got '{misconception_ops}')")
    ops = "".join(dict.fromkeys(ops))
    rng = random.Random(f"reasoner-arith:{seed}:{split}")
    found = _distinct_draws(rng, num_problems, split, min_ops, max_ops, max_operand, ops)
    if num_problems and not found:
        raise UserError(f"arith: no {split} problems exist for these settings (ops {min_ops}-{max_ops}, "
                        f"max_operand {max_operand}, '{ops}'); widen the ranges")
    problems: list[Problem] = []
    for i in range(num_problems):
        start, chain = found[i % len(found)]
        meta = {"split": split, "num_ops": len(chain), "corrupted": False}
        if i >= len(found):
            meta["repeat_of"] = problems[i % len(found)].id
        problems.append(Problem(
            id=f"arith-{split}-{seed}-{i}", prompt=render_prompt(start, chain), answer=str(solve(start, chain)[-1]),
            source="arith", solution_steps=gold_steps(start, chain), meta=meta))
    if split == "train" and misconception_rate > 0:
        _misconceive(problems, misconception_rate, misconception_ops, seed)
    if split == "train" and corrupt_fraction > 0:
        _corrupt_some(problems, corrupt_fraction, seed)
    return problems


def _digits(n: int, width: int) -> list[int]:
    return [int(c) for c in str(n).rjust(width, "0")]


def buggy_result(a: int, op: str, b: int) -> int | None:
    """What a student with the classic buggy procedures writes for `a op b` (Brown & Burton,
    1978): addition that forgets every carry (27 + 15 = 32), subtraction that takes the smaller
    digit from the larger in each column (42 - 15 = 33). None when the step needs no carry or
    borrow, so the bug leaves it right, or for other operations and negative numbers."""
    if op not in "+-" or a < 0 or b < 0 or (op == "-" and a < b):
        return None
    width = max(len(str(a)), len(str(b)))
    da, db = _digits(a, width), _digits(b, width)
    cols = [(x + y) % 10 if op == "+" else abs(x - y) for x, y in zip(da, db)]
    wrong = int("".join(map(str, cols)))
    return None if wrong == _apply(a, op, b) else wrong


def _misconceive(problems: list[Problem], rate: float, bug_ops: str, seed: int) -> None:
    """Rewrite gold solutions with the misconception: each carry/borrow step of `bug_ops` goes the
    buggy way with probability `rate` (unless a later step would then go negative, which the gym
    never asks for); later steps compute correctly from the value written."""
    rng = random.Random(f"reasoner-arith-misconception:{seed}")
    for p in problems:
        start, ops = parse_prompt(p.prompt)
        cur, steps, bugs = start, [], []
        for i, (op, b) in enumerate(ops):
            nxt = _apply(cur, op, b)
            wrong = buggy_result(cur, op, b) if op in bug_ops else None
            if wrong is not None and rng.random() < rate and min(solve(wrong, ops[i + 1:])) >= 0:
                nxt = wrong
                bugs.append(i)
            steps.append(f"{cur} {op} {b} = {nxt}")
            cur = nxt
        if bugs:
            p.solution_steps = steps + [f"Answer: {cur}"]
            p.meta.update(corrupted=True, first_error=bugs[0], misconception_steps=bugs)


def _corrupt_some(problems: list[Problem], fraction: float, seed: int) -> None:
    rng = random.Random(f"reasoner-arith-corrupt:{seed}")
    chosen = sorted(rng.sample(range(len(problems)), round(fraction * len(problems))))
    for i in chosen:
        steps, k = corrupt_solution(problems[i], rng)
        problems[i].solution_steps = steps
        problems[i].meta.update(corrupted=True, first_error=k)


def load_problems(cfg) -> list[Problem]:
    """The gym's problems for a DataConfig (num_problems, seed, split, difficulty knobs)."""
    return generate_problems(cfg.num_problems, seed=cfg.seed, split=cfg.split, min_ops=cfg.min_ops,
                             max_ops=cfg.max_ops, max_operand=cfg.max_operand, ops=cfg.ops,
                             corrupt_fraction=cfg.corrupt_fraction,
                             misconception_rate=getattr(cfg, "misconception_rate", 0.0),
                             misconception_ops=getattr(cfg, "misconception_ops", "+-"))


def check_steps(problem: Problem, steps: list[str]) -> list[bool]:
    """Ground-truth label of every step (ProcessBench semantics).

    Step i < n (n = number of operations) is right iff it reads 'a op b = c' with a the correct
    value so far, op and b the i-th operation of the prompt, and c = a op b. Step n is right iff
    it is 'Answer: v' with v the true answer. Anything after step n is wrong. Once a step is
    wrong every later step is labelled wrong too, even a correct continuation of the wrong value.
    A solution that stops early has no wrong step but no answer either (graded wrong by outcome).
    """
    start, ops = parse_prompt(problem.prompt)
    values = solve(start, ops)
    labels, ok = [], True
    for i, step in enumerate(steps):
        if ok:
            if i < len(ops):
                m = _STEP_RE.match(step)
                ok = bool(m) and (int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))) == (
                    values[i], ops[i][0], ops[i][1], values[i + 1])
            elif i == len(ops):
                m = _ANSWER_RE.match(step)
                ok = bool(m) and int(m.group(1)) == values[-1]
            else:
                ok = False
        labels.append(ok)
    return labels


def first_error(problem: Problem, steps: list[str]) -> int | None:
    """Index of the first wrong step, or None when every step is right."""
    labels = check_steps(problem, steps)
    return labels.index(False) if False in labels else None


def corrupt_solution(problem: Problem, rng: random.Random) -> tuple[list[str], int]:
    """A plausible wrong solution and the index of its first error.

    One step's result is off by 1 or 2 (a slip); later steps compute correctly *from the wrong
    value*, so only that step is locally wrong and the final answer is wrong. Values stay
    non-negative and divisions exact; the last operation can always take a slip, so this never
    fails.
    """
    start, ops = parse_prompt(problem.prompt)
    values = solve(start, ops)
    positions = list(range(len(ops)))
    rng.shuffle(positions)
    deltas = [-2, -1, 1, 2]
    for k in positions:
        rng.shuffle(deltas)
        for d in deltas:
            steps = _propagate(values, ops, k, values[k + 1] + d)
            if steps is not None:
                return steps, k
    raise AssertionError("unreachable: the last step always accepts a +1 slip")


def _propagate(values: list[int], ops: Ops, k: int, wrong: int) -> list[str] | None:
    """Gold steps up to k, step k ending in `wrong`, then consistent steps; None if not clean."""
    if wrong < 0:
        return None
    steps = [f"{values[i]} {op} {b} = {values[i + 1]}" for i, (op, b) in enumerate(ops[:k])]
    steps.append(f"{values[k]} {ops[k][0]} {ops[k][1]} = {wrong}")
    cur = wrong
    for op, b in ops[k + 1:]:
        if (op == "/" and cur % b) or (op == "-" and cur - b < 0):
            return None
        nxt = _apply(cur, op, b)
        steps.append(f"{cur} {op} {b} = {nxt}")
        cur = nxt
    if cur == values[-1]:
        return None
    return steps + [f"Answer: {cur}"]


def format_solution(steps: list[str], answer: str) -> str:
    """Steps one per line; 'Answer: n' is appended only when the steps do not end with one."""
    lines = [s.strip() for s in steps if s.strip()]
    if not lines or not lines[-1].startswith("Answer:"):
        lines.append(f"Answer: {answer}")
    return "\n".join(lines)
