"""The two record types every stage reads and writes: Problem and Trajectory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reasoner.errors import DataError
from reasoner.data.validation import Check, check_steps, read_labels


@dataclass(frozen=True)
class Where:
    """Where a record's prompt came from, so a later check (prompt length) can name file, line, field."""

    path: str
    line: int | None
    field: str | None

    def error(self, message: str) -> DataError:
        return DataError(self.path, self.line, self.field, message)


def where_of(path, line, name: str) -> Where | None:
    return None if path is None else Where(str(path), line, name)


@dataclass
class Problem:
    id: str
    prompt: str                   # the question, without chat template
    answer: str                   # gold final answer as a string ("18", "\\frac{1}{2}")
    source: str                   # "arith" | "gsm8k" | "math500" | file name
    solution_steps: list[str] | None = None   # gold steps when known (gym, GSM8K)
    meta: dict = field(default_factory=dict)
    where: Where | None = field(default=None, compare=False, repr=False)   # the prompt's file/line/field; not saved

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt": self.prompt, "answer": self.answer, "source": self.source,
                "solution_steps": None if self.solution_steps is None else list(self.solution_steps),
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d: Any, path=None, line=None) -> Problem:
        """Validated construction; DataError names path, line and the offending field."""
        chk = Check(d, path, line)
        return cls(
            id=chk.string("id", nonempty=True),
            prompt=chk.string("prompt", nonempty=True),
            answer=chk.string("answer"),
            source=chk.string("source"),
            solution_steps=chk.string_list("solution_steps", optional=True),
            meta=chk.mapping("meta"),
            where=where_of(path, line, "prompt"),
        )


@dataclass
class Trajectory:
    id: str                       # f"{problem_id}/{sample_index}"
    problem_id: str
    prompt: str                   # the prompt as sent (after the chat template)
    response: str
    steps: list[str]
    pred_answer: str | None
    reward: float                 # outcome reward (1.0 correct, 0.0 otherwise)
    step_labels: list[float | None] | None = None
    meta: dict = field(default_factory=dict)   # generator metadata (model, temperature, finish_reason, ...)
    where: Where | None = field(default=None, compare=False, repr=False)   # the prompt's file/line/field; not saved

    def to_dict(self) -> dict:
        return {"id": self.id, "problem_id": self.problem_id, "prompt": self.prompt,
                "response": self.response, "steps": list(self.steps), "pred_answer": self.pred_answer,
                "reward": self.reward,
                "step_labels": None if self.step_labels is None else list(self.step_labels),
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d: Any, path=None, line=None) -> Trajectory:
        """Validated construction; DataError names path, line and the offending field."""
        chk = Check(d, path, line)
        steps = chk.string_list("steps")
        ids = chk.string("id", nonempty=True), chk.string("problem_id", nonempty=True)
        prompt, response = chk.string("prompt", nonempty=True), chk.string("response")
        check_steps(chk, "steps", steps, response)
        return cls(
            id=ids[0],
            problem_id=ids[1],
            prompt=prompt,
            response=response,
            steps=steps,
            pred_answer=chk.string("pred_answer", optional=True),
            reward=chk.number("reward"),
            step_labels=read_labels(chk, "step_labels", len(steps), allow_none=True),
            meta=chk.mapping("meta"),
            where=where_of(path, line, "prompt"),
        )


def split_steps(text: str, separator: str = "\n") -> list[str]:
    """Steps of a response: pieces between separators, stripped, empty pieces dropped."""
    return [s.strip() for s in text.split(separator) if s.strip()]
