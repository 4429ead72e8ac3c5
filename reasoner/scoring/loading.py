"""`load_scorer`: the StepScorer a `scorer:` config section describes."""

from __future__ import annotations

from reasoner.errors import UserError
from reasoner.scoring.base import KINDS, StepScorer, aggregate
from reasoner.scoring.discriminative import DiscriminativeScorer
from reasoner.scoring.spans import ImplicitScorer, OutcomeScorer, ValueScorer


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
