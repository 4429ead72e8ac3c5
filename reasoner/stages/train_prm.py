"""`reasoner train-prm`: train a process reward model (ALGORITHMS.md §3).

prm=discriminative: a step tag after every step; the loss sits only at the tag positions
(`prm.tokenization.encode_tagged`), hard labels by cross-entropy over '+'/'-' or soft MC labels
by BCE; tokens head (the LM's '+'/'-' logits) or scalar head (a `ValueModel`). Steps labelled
None are not trained. prm=implicit: PRIME's outcome-only BCE on beta * summed log-ratio to a
frozen reference (the starting model).

Data: Trajectory jsonl with step_labels (`reasoner collect labels=...`) or TRL PRM records.
Full fine-tune or LoRA (model.lora.*); checkpoints resume exactly; run_dir/final is the PRM
directory (`prm.model`: model + prm.json [+ reference/]) that `scoring.load_scorer` reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from reasoner.errors import UserError
from reasoner.utils.progress import log, progress


@dataclass
class Item:
    """One tokenised training example."""

    input_ids: list[int]
    cols: list[int]         # discriminative: tag positions; implicit: response token positions
    targets: list[float]    # discriminative: the label at each col; implicit: [outcome]


def validate(cfg) -> None:
    if cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise UserError("config: batch_size and grad_accum must be >= 1")
    if cfg.epochs <= 0 and not cfg.max_steps:
        raise UserError("config: epochs must be > 0 (or set max_steps)")
    if cfg.max_length < 2:
        raise UserError("config: max_length must be >= 2")
    if not cfg.train_file:
        raise UserError("config: train_file is required (labelled trajectories from `reasoner collect "
                        "labels=shepherd|omegaprm|truth`, or TRL PRM records): add train_file=PATH")


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


def batch_loss(model, reference, spec, items: list[Item], pad_id: int, device, ids_pos_neg) -> tuple[torch.Tensor, dict]:
    """Mean loss of one micro-batch (per labelled step, or per sequence for implicit) + metrics."""
    from reasoner.prm.losses import discriminative_loss, implicit_loss
    from reasoner.prm.model import reference_logprobs, tag_logits, token_logprobs
    from reasoner.utils.train import pad_batch

    ids, mask = pad_batch([it.input_ids for it in items], pad_id)
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
    logp = logp.index_put((rows, cols), token_logprobs(model, ids, mask, rows, cols))
    ref[rows, cols] = reference_logprobs(reference, ids, mask, rows, cols).float()
    resp[rows, cols] = 1.0
    outcome = torch.tensor([it.targets[0] for it in items], dtype=torch.float32, device=device)
    return implicit_loss(logp, ref, resp, outcome, spec.beta)


def _weight(spec, items: list[Item]) -> int:
    """How much a micro-batch counts in the step's mean: its labelled steps (or sequences)."""
    return sum(len(it.targets) for it in items) if spec.kind == "discriminative" else len(items)


def run(cfg) -> Path:
    from reasoner.models import load_tokenizer
    from reasoner.prm.evaluate import reference_labels
    from reasoner.prm.examples import count_labelled, read_examples
    from reasoner.prm.model import PRMSpec, save_prm, token_id
    from reasoner.prompts import bound_prompts
    from reasoner.tasks import get_task
    from reasoner.utils import checkpoint as ckpt
    from reasoner.utils.guard import RefusedStep, check_loss, require_finite_model, stop_error
    from reasoner.utils.run import prepare_run_dir, write_text_atomic
    from reasoner.utils.train import TrainState, epoch_order

    validate(cfg)
    task = get_task(cfg.data.name)
    separator = cfg.prm.step_separator if cfg.prm.step_separator is not None else task.step_separator
    spec = PRMSpec.from_config(cfg.prm, separator, base_model=cfg.model.name_or_path)
    examples = read_examples(cfg.train_file, separator)
    eval_examples = read_examples(cfg.eval_file, separator) if cfg.eval_file else None
    if spec.kind == "discriminative" and count_labelled(examples)[0] == 0:
        raise UserError(f"{cfg.train_file}: no step labels to train a discriminative PRM on "
                        "(collect with labels=shepherd|omegaprm|truth, or use prm=implicit)")
    if eval_examples is not None:  # fail on unusable eval data before anything is trained or written
        reference_labels(eval_examples, task, "file", spec.threshold, where=cfg.eval_file)
    early_tokenizer = load_tokenizer(cfg.model)   # prompt lengths are checked before the model loads
    examples = bound_prompts(examples, early_tokenizer, cfg.data)
    if eval_examples is not None:
        eval_examples = bound_prompts(eval_examples, early_tokenizer, cfg.data)

    torch.manual_seed(cfg.seed)
    model, tokenizer, reference = load_models(cfg, spec)
    pos_neg = (None, None) if spec.head == "scalar" else (
        token_id(tokenizer, spec.positive_token, "prm.positive_token"),
        token_id(tokenizer, spec.negative_token, "prm.negative_token"))
    limit = getattr(model.config, "max_position_embeddings", None) or cfg.max_length
    items = encode_items(examples, tokenizer, spec, min(cfg.max_length, limit))
    if not items:
        raise UserError(f"{cfg.train_file}: no example has a trainable step (all unlabelled, empty or cut by max_length)")
    run_dir = prepare_run_dir(cfg, "train-prm")

    plan = TrainState(cfg, model, len(items), run_dir, "prm", log)
    per_step, steps_per_epoch, total_steps = plan.per_step, plan.steps_per_epoch, plan.total_steps
    optimizer, scheduler, step, metrics, ckpt_root = plan.optimizer, plan.scheduler, plan.step, plan.metrics, plan.ckpt_root
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n_lab = sum(len(it.targets) for it in items)
    log(f"train-prm ({spec.kind}, {spec.head} head, {spec.label_type} labels): {len(items)} examples"
        + (f", {n_lab} labelled steps ({sum(v >= spec.threshold for it in items for v in it.targets) / n_lab:.1%} positive)"
           if spec.kind == "discriminative" else f" ({sum(it.targets[0] >= 0.5 for it in items) / len(items):.1%} correct)")
        + f", {total_steps} steps of {per_step}, run_dir={run_dir}")

    model.train()
    started, loss_value, acc_key = time.time(), None, "step_acc" if spec.kind == "discriminative" else "outcome_acc"
    with progress() as bar:
        task_id = bar.add_task("train-prm", total=total_steps, completed=step, info="")
        while step < total_steps:
            epoch, offset = divmod(step, steps_per_epoch)
            order = epoch_order(len(items), cfg.seed, epoch)
            optimizer.zero_grad(set_to_none=True)
            picked = [items[order[(offset * per_step + i) % len(order)]] for i in range(per_step)]
            total_w = _weight(spec, picked)
            loss_sum, acc_sum = 0.0, 0.0
            for m in range(cfg.grad_accum):
                micro = picked[m * cfg.batch_size:(m + 1) * cfg.batch_size]
                w = _weight(spec, micro)
                loss, mets = batch_loss(model, reference, spec, micro, pad_id, device, pos_neg)
                (loss * (w / total_w)).backward()
                loss_sum += mets["loss"] * w
                acc_sum += mets[acc_key] * w
            loss_value = loss_sum / total_w
            try:
                check_loss("loss", loss_value)
                grad_norm = plan.guard.step()
            except RefusedStep as err:
                raise stop_error("train-prm", step + 1, err, ckpt_root) from None
            scheduler.step()
            step += 1
            if step % cfg.log_every == 0 or step == total_steps:
                metrics.write({"step": step, "loss": round(loss_value, 5), acc_key: round(acc_sum / total_w, 4),
                               "lr": scheduler.get_last_lr()[0], "grad_norm": round(float(grad_norm), 4),
                               "epoch": round(step / steps_per_epoch, 3)})
                bar.update(task_id, info=f"loss {loss_value:.4f} {acc_key} {acc_sum / total_w:.3f}")
            bar.update(task_id, completed=step)
            if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
                ckpt.save_checkpoint(ckpt_root, step, {"prm": model},
                                     {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})

    model.eval()
    summary = {"kind": spec.kind, "head": spec.head, "label_type": spec.label_type, "steps": step,
               "examples": len(items), "trained_targets": n_lab, "final_loss": loss_value,
               "wall_s": round(time.time() - started, 1)}
    if eval_examples is not None:
        summary["eval"] = final_eval(model, reference, tokenizer, spec, eval_examples, task, cfg)
        log("eval: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["eval"].items()
                                 if k in ("step_accuracy", "step_auc", "first_error_f1") and v is not None))
    final_dir = run_dir / "final"
    require_finite_model({"prm": model}, "train-prm: final model", ckpt_root)
    save_prm(model, tokenizer, spec, final_dir, reference_model=_plain_reference(cfg, reference))
    summary["model_dir"] = str(final_dir)
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(f"train-prm done: {step} steps, PRM saved to {final_dir}")
    return final_dir


def _plain_reference(cfg, reference):
    """The reference as a plain model to save beside an implicit PRM (None otherwise)."""
    if reference is None:
        return None
    if not reference.adapter_disabled:
        return reference.model
    from reasoner.models import load_policy

    base_cfg = replace(cfg.model, lora=replace(cfg.model.lora, enabled=False))
    return load_policy(base_cfg)[0]


def final_eval(model, reference, tokenizer, spec, examples, task, cfg) -> dict:
    """eval_file metrics of the model just trained, against the file's own step labels (same
    code path as `reasoner eval-prm label_source=file`)."""
    from reasoner.prm.evaluate import evaluate, reference_labels
    from reasoner.scoring import DiscriminativeScorer, ImplicitScorer

    if spec.kind == "implicit":
        scorer = ImplicitScorer(model, reference, tokenizer, spec, cfg.batch_size)
    else:
        scorer = DiscriminativeScorer(model, tokenizer, spec, cfg.batch_size)
    kept, hard, soft = reference_labels(examples, task, "file", spec.threshold)
    metrics, _ = evaluate(scorer, kept, hard, soft, batch_size=max(cfg.batch_size, 32))
    return metrics
