"""The one step-scoring API used by decode (search) and RL: prompts + steps -> per-step scores.

    scorer = load_scorer(cfg.scorer, device)        # None for scorer.kind=none
    scores = scorer.score(prompts, steps)           # list[list[float]], every score in [0, 1]
    best = aggregate(scores[i], "min")              # min | last | prod | mean

Every scorer runs ONE forward pass per solution (all its steps at once), batched across
solutions (sorted by length to cut padding). Kinds:

- prm       discriminative PRM: P(+) at each step tag (`reasoner.prm.tokenization.encode_tagged`),
            from the '+'/'-' logits (tokens head) or sigmoid of a 1-logit head (scalar head).
- implicit  implicit PRM (PRIME): sigmoid(beta * sum of log pi/pi_ref over the step's tokens)
            ("step"), or over all tokens so far ("cumulative", a Q-value), per prm.json.
- value     a `models.ValueModel` (e.g. OREO's): V at the last token of each step, clipped to [0, 1].
- orm       outcome mode over any of the above: only the end of the solution is scored and every
            step gets that same score (so all aggregations equal it; no NaN). For a
            discriminative PRM it is the last tag's P(+); for an implicit PRM
            sigmoid(beta * log-ratio of the whole response), the quantity it was trained on.

Solutions longer than the scorer's context are cut on the left (the prompt's start goes
first); a step whose read position falls off is read at the first kept token.
"""

from __future__ import annotations

import math
from typing import Protocol

from reasoner.errors import UserError
from reasoner.scoring.discriminative import DiscriminativeScorer
from reasoner.scoring.spans import ImplicitScorer, OutcomeScorer, ValueScorer

__all__ = ["AGGREGATIONS", "KINDS", "DiscriminativeScorer", "ImplicitScorer", "OutcomeScorer", "StepScorer",
           "ValueScorer", "aggregate", "load_scorer", "scorer_from_prm"]

AGGREGATIONS = ("min", "last", "prod", "mean")
KINDS = ("none", "prm", "implicit", "value", "orm")


class StepScorer(Protocol):
    def score(self, prompts: list[str], steps: list[list[str]]) -> list[list[float]]:
        """Per-step scores in [0, 1], one list per solution (prompt + steps joined by the separator)."""
        ...


def aggregate(scores: list[float], how: str = "last") -> float:
    """One number for a whole solution from its step scores (an empty solution scores 0)."""
    if how not in AGGREGATIONS:
        raise UserError(f"scorer.aggregate '{how}': must be one of {', '.join(AGGREGATIONS)}")
    if not scores:
        return 0.0
    if how == "min":
        return min(scores)
    if how == "last":
        return scores[-1]
    if how == "prod":
        return math.prod(scores)
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------- loading


def scorer_from_prm(loaded, batch_size: int = 32):
    """The StepScorer of an already loaded PRM (`reasoner.prm.model.LoadedPRM`)."""
    if loaded.spec.kind == "implicit":
        return ImplicitScorer(loaded.model, loaded.reference, loaded.tokenizer, loaded.spec, batch_size)
    return DiscriminativeScorer(loaded.model, loaded.tokenizer, loaded.spec, batch_size)


def _fallback_spec(scorer_cfg, kind: str):
    from reasoner.prm.model import PRMSpec

    prm = scorer_cfg.prm
    return PRMSpec(kind=kind, head=prm.head, step_tag=prm.step_tag, positive_token=prm.positive_token,
                   negative_token=prm.negative_token, step_separator=_separator(scorer_cfg),
                   beta=float(prm.beta), implicit_score=getattr(prm, "implicit_score", None) or "step",
                   reference=None).validate("scorer.prm")


def _separator(scorer_cfg) -> str:
    sep = getattr(scorer_cfg.prm, "step_separator", None)
    return "\n" if sep is None else sep


def _is_value_dir(path) -> bool:
    from pathlib import Path

    from reasoner.models import VALUE_HEAD_FILE
    from reasoner.prm.model import read_spec

    return (Path(path) / VALUE_HEAD_FILE).is_file() and read_spec(path) is None


def load_scorer(scorer_cfg, device=None) -> StepScorer | None:
    """The StepScorer that `scorer_cfg` (config.ScorerConfig) describes; None for kind=none.

    A directory written by `reasoner train-prm` carries prm.json, which decides tag, tokens,
    separator and beta; `scorer.prm.*` is used only for directories without one (a plain HF
    PRM such as a Math-Shepherd-style model), except `scorer.prm.implicit_score` which, when
    set, overrides how an implicit PRM's steps are read. kind=value takes a `ValueModel` directory;
    kind=orm wraps whichever of the three the directory holds.
    """
    from pathlib import Path

    from reasoner.models import ValueModel, load_tokenizer
    from reasoner.config import ModelConfig
    from reasoner.prm.model import load_prm, read_spec

    kind = scorer_cfg.kind
    if kind not in KINDS:
        raise UserError(f"scorer.kind '{kind}': must be one of {', '.join(KINDS)}")
    aggregate([], scorer_cfg.aggregate)  # validates the name early
    if kind == "none":
        return None
    if not scorer_cfg.path:
        raise UserError(f"scorer.path is required for scorer.kind={kind} (a directory from reasoner train-prm)")
    path = Path(scorer_cfg.path).expanduser()
    if not path.is_dir():
        raise UserError(f"scorer.path '{scorer_cfg.path}': no such directory")
    device = device if device is not None else "auto"
    batch = scorer_cfg.batch_size
    if kind == "value" or (kind == "orm" and _is_value_dir(path)):
        if not _is_value_dir(path):
            raise UserError(f"scorer.path '{scorer_cfg.path}': not a value-model directory (no value_head.safetensors)")
        model = ValueModel.load(path, device).requires_grad_(False).eval()
        tok = load_tokenizer(ModelConfig(name_or_path=str(path)))
        inner = ValueScorer(model, tok, _separator(scorer_cfg), batch)
        return OutcomeScorer(inner) if kind == "orm" else inner
    spec = read_spec(path)
    if spec is not None and kind in ("prm", "implicit") and spec.kind != {"prm": "discriminative", "implicit": "implicit"}[kind]:
        other = "implicit" if spec.kind == "implicit" else "prm"
        raise UserError(f"scorer.path '{scorer_cfg.path}' holds a {spec.kind} PRM; use scorer.kind={other} (or orm)")
    fallback = _fallback_spec(scorer_cfg, "implicit" if kind == "implicit" else "discriminative")
    if spec is None and fallback.kind == "implicit":
        raise UserError(f"scorer.path '{scorer_cfg.path}': an implicit PRM needs the prm.json and reference/ that train-prm writes")
    loaded = load_prm(path, device, fallback=fallback)
    override = getattr(scorer_cfg.prm, "implicit_score", None)
    if override:  # a scoring-time choice: read the same implicit PRM as step rewards or as a Q-value
        loaded.spec.implicit_score = override
        loaded.spec.validate("scorer.prm")
    inner = scorer_from_prm(loaded, batch)
    return OutcomeScorer(inner) if kind == "orm" else inner
