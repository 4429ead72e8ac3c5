"""The PRM directory format and the forward passes every PRM user shares.

A PRM directory is a model saved by `models.save_model` (HF format; a `ValueModel` for the
scalar head) plus `prm.json`, written last, so a directory without it is incomplete:

    {"format": 1, "kind": "discriminative"|"implicit", "head": "tokens"|"scalar",
     "step_tag": " ки", "positive_token": "+", "negative_token": "-", "step_separator": "\\n",
     "beta": 0.05, "implicit_score": "step", "label_type": "hard", "threshold": 0.5,
     "reference": "reference" | null, "base_model": "..."}

An implicit PRM needs its reference to score, so a full copy of it is saved in the
sub-directory named by "reference" (the PRM dir stays self-contained and movable).

Forward helpers compute only what is read: the decoder's hidden states, then the LM head on
the gathered positions only (for the tokens head, only its '+'/'-' rows), so a 50k-token
vocabulary never costs a [B, T, V] logits tensor.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from reasoner.errors import UserError

PRM_FILE = "prm.json"
REFERENCE_SUBDIR = "reference"
KINDS = ("discriminative", "implicit")
HEADS = ("tokens", "scalar")
LABEL_TYPES = ("hard", "soft")
IMPLICIT_SCORES = ("step", "cumulative")


@dataclass
class PRMSpec:
    """What a PRM is and how its input is built; stored as prm.json."""

    kind: str = "discriminative"
    head: str = "tokens"
    step_tag: str = " ки"
    positive_token: str = "+"
    negative_token: str = "-"
    step_separator: str = "\n"
    beta: float = 0.05
    implicit_score: str = "step"  # step: sigmoid(step reward) | cumulative: sigmoid(sum of rewards so far)
    label_type: str = "hard"
    threshold: float = 0.5
    reference: str | None = None
    base_model: str | None = None
    format: int = 1

    @classmethod
    def from_config(cls, prm_cfg, separator: str, base_model: str | None = None) -> "PRMSpec":
        spec = cls(kind=prm_cfg.name, head=prm_cfg.head, step_tag=prm_cfg.step_tag,
                   positive_token=prm_cfg.positive_token, negative_token=prm_cfg.negative_token,
                   step_separator=separator, beta=float(prm_cfg.beta),
                   implicit_score=getattr(prm_cfg, "implicit_score", None) or "step", label_type=prm_cfg.label_type,
                   threshold=float(prm_cfg.threshold), base_model=base_model)
        spec.validate("prm")
        return spec

    def validate(self, where: str) -> "PRMSpec":
        for name, value, allowed in (("name" if where == "prm" else "kind", self.kind, KINDS),
                                     ("head", self.head, HEADS), ("label_type", self.label_type, LABEL_TYPES),
                                     ("implicit_score", self.implicit_score, IMPLICIT_SCORES)):
            if value not in allowed:
                raise UserError(f"{where}.{name} '{value}': must be one of {', '.join(allowed)}")
        if self.kind == "implicit" and self.head != "tokens":
            raise UserError(f"{where}: an implicit PRM is a causal LM; head must be 'tokens'")
        if not self.step_tag and self.kind == "discriminative":
            raise UserError(f"{where}.step_tag is empty; a discriminative PRM reads its score at the tag")
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"{where}.threshold {self.threshold}: must be in [0, 1]")
        if self.beta <= 0:
            raise UserError(f"{where}.beta {self.beta}: must be > 0")
        return self


def read_spec(path: str | Path) -> PRMSpec | None:
    """The prm.json of a PRM directory, or None when there is none (e.g. a plain HF model)."""
    file = Path(path) / PRM_FILE
    if not file.is_file():
        return None
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{file}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{file}: expected a JSON object")
    known = {f.name for f in fields(PRMSpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UserError(f"{file}: field '{unknown[0]}': unknown (written by a newer reasoner?)")
    try:
        return PRMSpec(**raw).validate(str(file))
    except TypeError as exc:
        raise UserError(f"{file}: {exc}") from None


def write_spec(spec: PRMSpec, out_dir: str | Path) -> None:
    from reasoner.utils.io import write_json_atomic

    write_json_atomic(Path(out_dir) / PRM_FILE, asdict(spec))


def token_id(tokenizer, text: str, what: str) -> int:
    """The id of a label token; it must be exactly one token of this tokenizer."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise UserError(f"{what} {text!r} is {len(ids)} tokens for this tokenizer; choose a single-token string")
    return ids[0]


# --------------------------------------------------------------------------- forward passes


def causal_lm(model):
    from reasoner.models import is_peft

    return model.get_base_model() if is_peft(model) else model


def decoder_and_head(model):
    """(decoder body, LM head) of a causal LM (PEFT layers, being injected in place, stay active)."""
    lm = causal_lm(model)
    decoder, head = lm.get_decoder(), lm.get_output_embeddings()
    if decoder is None or head is None or decoder is lm:
        raise UserError(f"model class {type(lm).__name__} does not expose a decoder and an LM head; "
                        "use a standard causal LM as the PRM base")
    return decoder, head


def hidden_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    decoder, _ = decoder_and_head(model)
    out = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def tag_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor,
               cols: torch.Tensor, pos_id: int | None, neg_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """('+' logit, '-' logit) at positions (rows[k], cols[k]): the step-tag positions.

    A `ValueModel` is the scalar head: its output there, against a constant 0.
    """
    from reasoner.models import ValueModel

    if isinstance(model, ValueModel):
        values = model(input_ids, attention_mask)[rows, cols]
        return values, torch.zeros_like(values)
    return head_tag_logits(model, hidden_states(model, input_ids, attention_mask)[rows, cols], pos_id, neg_id)


def head_tag_logits(model, hidden: torch.Tensor, pos_id: int, neg_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """('+' logit, '-' logit) from final hidden states [k, H]: only those two rows of the LM head."""
    _, head = decoder_and_head(model)
    if head.weight.numel() == 0:  # ZeRO-3 partitions the head: its weight is whole only inside its own call
        logits = head(hidden.to(head.weight.dtype))[:, [pos_id, neg_id]]
        return logits[:, 0].float(), logits[:, 1].float()
    weight = head.weight[[pos_id, neg_id]]
    logits = hidden.to(weight.dtype) @ weight.T
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[[pos_id, neg_id]]
    return logits[:, 0].float(), logits[:, 1].float()


def position_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor,
                      cols: torch.Tensor) -> torch.Tensor:
    """log p(input_ids[r, c] | tokens before c) for each (r, c); c >= 1. The LM head (and the
    softmax, `algos.token_logprobs`) only at those positions."""
    from reasoner.algos.logprobs import token_logprobs

    _, head = decoder_and_head(model)
    h = hidden_states(model, input_ids, attention_mask)[rows, cols - 1]
    return token_logprobs(head(h), input_ids[rows, cols])


def reference_logprobs(reference, input_ids, attention_mask, rows, cols) -> torch.Tensor:
    """position_logprobs under a `models.ReferenceModel` (its own copy, or the policy with its
    adapter disabled), without gradients."""
    model = reference.model
    ctx = model.disable_adapter() if reference.adapter_disabled else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        return position_logprobs(model, input_ids, attention_mask, rows, cols)


# --------------------------------------------------------------------------- save / load


@dataclass
class LoadedPRM:
    model: object
    tokenizer: object
    spec: PRMSpec
    reference: object | None = None  # models.ReferenceModel (implicit PRMs)


def save_prm(model, tokenizer, spec: PRMSpec, out_dir: str | Path, reference_model=None) -> Path:
    """Model (LoRA merged), reference copy for implicit PRMs, then prm.json last."""
    from reasoner.models import save_model

    out = Path(out_dir)
    save_model(model, tokenizer, out, merge_lora=True)
    if spec.kind == "implicit":
        if reference_model is None:
            raise ValueError("an implicit PRM needs its reference model to be saved with it")
        save_model(reference_model, tokenizer, out / REFERENCE_SUBDIR, merge_lora=True)
        spec.reference = REFERENCE_SUBDIR
    write_spec(spec, out)
    return out


def load_prm(path: str | Path, device="auto", dtype="auto", fallback: PRMSpec | None = None) -> LoadedPRM:
    """A PRM directory back as (model, tokenizer, spec, reference), frozen and in eval mode.

    Without prm.json, `fallback` says how to use the directory (e.g. an external Math-Shepherd
    style PRM in plain HF format, scored with the configured tag and '+'/'-' tokens).
    """
    from reasoner.config import ModelConfig
    from reasoner.models import ReferenceModel, ValueModel, load_policy, load_tokenizer, resolve_device

    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"PRM '{path}': no such directory")
    spec = read_spec(root) if root.is_dir() else None
    if spec is None:
        if fallback is None:
            raise UserError(f"PRM '{path}': no {PRM_FILE} (not a directory written by reasoner train-prm)")
        spec = fallback
    cfg = ModelConfig(name_or_path=str(root), device=str(resolve_device(device)), dtype=str(dtype) if isinstance(dtype, str) else "auto")
    reference = None
    if spec.head == "scalar":
        model = ValueModel.load(root, cfg.device, cfg.dtype)
        tokenizer = load_tokenizer(cfg)
    else:
        model, tokenizer = load_policy(cfg)
    if spec.kind == "implicit":
        ref_dir = root / (spec.reference or REFERENCE_SUBDIR)
        if not ref_dir.is_dir():
            raise UserError(f"PRM '{path}': implicit PRM without its reference model ({ref_dir} is missing)")
        ref_model, _ = load_policy(ModelConfig(name_or_path=str(ref_dir), device=cfg.device, dtype=cfg.dtype))
        reference = ReferenceModel(ref_model.requires_grad_(False).eval())
    model.requires_grad_(False)
    return LoadedPRM(model.eval(), tokenizer, spec, reference)
