"""Training a process reward model as a recipe (ALGORITHMS.md §3), for `reasoner train-prm`.

prm=discriminative: a step tag after every step; the loss sits only at the tag positions
(`prm.tokenization.encode_tagged`), hard labels by cross-entropy over '+'/'-' or soft MC labels
by BCE; tokens head (the LM's '+'/'-' logits) or scalar head (a `ValueModel`). Steps labelled
None are not trained. prm=implicit: PRIME's outcome-only BCE on beta * summed log-ratio to a
frozen reference (the starting model). The final directory is the PRM format `load_scorer` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from reasoner.errors import UserError
from reasoner.train.recipe import EpochBatches, Optim, RecipeBase, Step, device_of, pad_id
from reasoner.utils.guard import check_loss


@dataclass
class Item:
    """One tokenised training example."""

    input_ids: list[int]
    cols: list[int]         # discriminative: tag positions; implicit: response token positions
    targets: list[float]    # discriminative: the label at each col; implicit: [outcome]


def encode_items(examples, tokenizer, spec, max_length: int) -> list[Item]:
    """Discriminative: labels placed at the tag positions scoring reads; implicit: the response
    tokens and the outcome. Examples with nothing to train are skipped."""
    from reasoner.prm.tokenization import encode_spans, encode_tagged, place_labels

    cache: dict = {}
    items = []
    for ex in examples:
        if not ex.steps:
            continue
        if spec.kind == "discriminative":
            if ex.labels is None:
                continue
            enc = encode_tagged(tokenizer, ex.prompt, ex.steps, spec.step_tag, spec.step_separator, max_length, cache)
            pairs = place_labels(enc.positions, ex.labels)
            if pairs:
                items.append(Item(enc.input_ids, [p for p, _ in pairs], [v for _, v in pairs]))
        else:
            enc = encode_spans(tokenizer, ex.prompt, ex.steps, spec.step_separator, max_length, cache)
            if enc.spans:
                cols = list(range(enc.spans[0][0], enc.spans[-1][1]))
                items.append(Item(enc.input_ids, cols, [ex.outcome]))
    return items


def load_models(cfg, spec):
    """(model to train, tokenizer, frozen reference or None)."""
    from reasoner.models import load_policy, load_reference, load_tokenizer, load_value_model

    if spec.head == "scalar":
        tokenizer = load_tokenizer(cfg.model)
        return load_value_model(cfg.model), tokenizer, None
    model, tokenizer = load_policy(cfg.model)
    reference = load_reference(cfg.model, model) if spec.kind == "implicit" else None
    return model, tokenizer, reference


def batch_loss(model, reference, spec, items: list[Item], pad: int, device, ids_pos_neg) -> tuple[torch.Tensor, dict]:
    """Mean loss of one micro-batch (per labelled step, or per sequence for implicit) + metrics."""
    from reasoner.prm.losses import discriminative_loss, implicit_loss
    from reasoner.prm.model import position_logprobs, reference_logprobs, tag_logits
    from reasoner.utils.train import pad_batch

    ids, mask = pad_batch([it.input_ids for it in items], pad)
    ids, mask = ids.to(device), mask.to(device)
    rows = torch.tensor([r for r, it in enumerate(items) for _ in it.cols], dtype=torch.long, device=device)
    cols = torch.tensor([c for it in items for c in it.cols], dtype=torch.long, device=device)
    if spec.kind == "discriminative":
        labels = torch.tensor([v for it in items for v in it.targets], dtype=torch.float32, device=device)
        pos, neg = tag_logits(model, ids, mask, rows, cols, *ids_pos_neg)
        return discriminative_loss(pos, neg, labels, spec.label_type, spec.threshold)
    logp = torch.zeros(ids.shape, dtype=torch.float32, device=device)
    ref = torch.zeros_like(logp)
    resp = torch.zeros_like(logp)
    logp = logp.index_put((rows, cols), position_logprobs(model, ids, mask, rows, cols))
    ref[rows, cols] = reference_logprobs(reference, ids, mask, rows, cols).float()
    resp[rows, cols] = 1.0
    outcome = torch.tensor([it.targets[0] for it in items], dtype=torch.float32, device=device)
    return implicit_loss(logp, ref, resp, outcome, spec.beta)


def plain_reference(model_cfg, reference):
    """The reference as a plain model to save beside an implicit PRM (None when there is none):
    its own frozen copy, or the base loaded afresh when the reference is the policy without its adapter."""
    if reference is None:
        return None
    if not reference.adapter_disabled:
        return reference.model
    from reasoner.models import load_policy

    return load_policy(replace(model_cfg, lora=replace(model_cfg.lora, enabled=False)))[0]


class PRMRecipe(RecipeBase):
    """`reasoner train-prm`: batch_size x grad_accum examples per step, weighted by labelled steps."""

    name = "train-prm"

    def __init__(self, cfg, spec, examples, eval_examples=None, task=None):
        from reasoner.prm.model import token_id

        self.cfg, self.spec, self.eval_examples, self.task = cfg, spec, eval_examples, task
        torch.manual_seed(cfg.seed)
        self.model, self.tokenizer, self.reference = load_models(cfg, spec)
        self.pos_neg = (None, None) if spec.head == "scalar" else (
            token_id(self.tokenizer, spec.positive_token, "prm.positive_token"),
            token_id(self.tokenizer, spec.negative_token, "prm.negative_token"))
        limit = getattr(self.model.config, "max_position_embeddings", None) or cfg.max_length
        self.items = encode_items(examples, self.tokenizer, spec, min(cfg.max_length, limit))
        if not self.items:
            raise UserError(f"{cfg.train_file}: no example has a trainable step (all unlabelled, empty or cut by max_length)")
        self.batches = EpochBatches(len(self.items), cfg.batch_size * cfg.grad_accum, cfg.seed)
        self.total_steps = cfg.max_steps or self.batches.total(cfg.epochs)
        self.acc_key = "step_acc" if spec.kind == "discriminative" else "outcome_acc"
        self.headline = ("loss", self.acc_key)
        self.final_loss = None

    def setup(self, out_dir: Path) -> None:
        self.opt = Optim(self.model, "prm", self.cfg.optim.lr, self.cfg.optim, self.total_steps)
        self.model.train()

    def describe(self) -> str:
        spec, items = self.spec, self.items
        n_lab = sum(len(it.targets) for it in items)
        if spec.kind == "discriminative":
            share = sum(v >= spec.threshold for it in items for v in it.targets) / n_lab
            what = f", {n_lab} labelled steps ({share:.1%} positive)"
        else:
            what = f" ({sum(it.targets[0] >= 0.5 for it in items) / len(items):.1%} correct)"
        return (f"train-prm ({spec.kind}, {spec.head} head, {spec.label_type} labels): {len(items)} examples{what}, "
                f"{self.total_steps} steps of {self.batches.size}")

    def models(self) -> dict:
        return {"prm": self.model}

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)

    def _weight(self, items: list[Item]) -> int:
        """How much a micro-batch counts in the step's mean: its labelled steps (or sequences)."""
        return sum(len(it.targets) for it in items) if self.spec.kind == "discriminative" else len(items)

    def train_step(self, step: int) -> Step:
        """The step's global batch, this rank's share of it in micro-batches (all of it on one process)."""
        from reasoner import dist

        cfg, device = self.cfg, device_of(self.model)
        picked = [self.items[i] for i in self.batches.indices(step)]
        total_w = self._weight(picked)
        mine, scale = dist.shard(picked), dist.loss_scale(total_w)
        loss_sum, acc_sum, tokens = 0.0, 0.0, 0
        for m in range(0, len(mine), cfg.batch_size):
            micro = mine[m:m + cfg.batch_size]
            w = self._weight(micro)
            loss, mets = batch_loss(self.model, self.reference, self.spec, micro, pad_id(self.tokenizer), device,
                                    self.pos_neg)
            self.opt.backward(loss * (w * scale))
            loss_sum += mets["loss"] * w
            acc_sum += mets[self.acc_key] * w
            tokens += sum(len(it.input_ids) for it in micro)
        loss_sum, acc_sum = dist.all_sum(loss_sum), dist.all_sum(acc_sum)
        self.final_loss = loss_sum / total_w
        check_loss("loss", self.final_loss)
        grad_norm = self.opt.step()
        return Step({"loss": round(self.final_loss, 5), self.acc_key: round(acc_sum / total_w, 4), "lr": self.opt.lr,
                     "grad_norm": round(float(grad_norm), 4), "epoch": self.batches.epoch(step + 1)}, tokens)

    def save_final(self, out_dir: Path, last_eval: float | None) -> dict:
        from reasoner.prm.model import save_prm
        from reasoner.utils.progress import log

        self.model.eval()
        spec = self.spec
        summary = {"kind": spec.kind, "head": spec.head, "label_type": spec.label_type, "steps": self.total_steps,
                   "examples": len(self.items), "trained_targets": sum(len(it.targets) for it in self.items),
                   "final_loss": self.final_loss}
        if self.eval_examples is not None:
            summary["eval"] = self.final_eval()
            log("eval: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["eval"].items()
                                     if k in ("step_accuracy", "step_auc", "first_error_f1") and v is not None))
        final_dir = out_dir / "final"
        save_prm(self.model, self.tokenizer, spec, final_dir, reference_model=plain_reference(self.cfg.model, self.reference))
        summary["model_dir"] = str(final_dir)
        return summary

    def final_eval(self) -> dict:
        """eval_file metrics of the model just trained, against the file's own step labels (the same
        code path as `reasoner eval-prm label_source=file`)."""
        from reasoner.prm.evaluate import evaluate, reference_labels
        from reasoner.scoring import DiscriminativeScorer, ImplicitScorer

        spec, bs = self.spec, self.cfg.batch_size
        if spec.kind == "implicit":
            scorer = ImplicitScorer(self.model, self.reference, self.tokenizer, spec, bs)
        else:
            scorer = DiscriminativeScorer(self.model, self.tokenizer, spec, bs)
        kept, hard, soft = reference_labels(self.eval_examples, self.task, "file", spec.threshold)
        metrics, _ = evaluate(scorer, kept, hard, soft, batch_size=max(bs, 32))
        return metrics
