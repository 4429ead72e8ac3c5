"""`reasoner train-sft`: supervised fine-tuning with the loss on response tokens only.

Trains on the gold solutions of a task, or on collected trajectories (rejection-sampling FT when
only correct ones are kept). Full fine-tuning or LoRA; checkpoints resume exactly (weights,
optimiser, scheduler, RNG, data position); the final model is saved in HF format.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from reasoner.errors import UserError
from reasoner.utils.progress import log, progress


@dataclass
class Example:
    prompt: str
    response: str


def gold_examples(cfg, tokenizer) -> list[Example]:
    """(prompt, gold response) pairs of the task's training split."""
    from reasoner.prompts import bound_problems, build_prompt
    from reasoner.tasks import get_task

    task = get_task(cfg.data.name)
    problems = bound_problems(task.load_problems(cfg.data), tokenizer, cfg.model, cfg.data)
    examples = []
    for p in problems:
        if not p.solution_steps:
            raise UserError(f"data '{cfg.data.name}': problem {p.id} has no gold solution to fine-tune on (use train_file=)")
        prompt = build_prompt(p.prompt, tokenizer, cfg.model.chat_template, cfg.model.system_prompt, cfg.data.name)
        examples.append(Example(prompt, task.format_solution(p)))
    return examples


def trajectory_examples(path: str, correct_only: bool, tokenizer=None, data_cfg=None) -> list[Example]:
    """(prompt as sent, response) pairs from a trajectories jsonl (e.g. `reasoner collect` output);
    with a tokenizer, prompts are held to data_cfg.max_prompt_tokens (`prompts.bound_prompts`)."""
    from reasoner.data import read_trajectories
    from reasoner.prompts import bound_prompts

    trajs = read_trajectories(path)
    if tokenizer is not None:
        trajs = bound_prompts(trajs, tokenizer, data_cfg)
    kept = [Example(t.prompt, t.response) for t in trajs if (t.reward >= 1.0 or not correct_only)]
    if not kept:
        raise UserError(f"{path}: no {'correct ' if correct_only else ''}trajectories to train on")
    return kept


def tokenize_example(tokenizer, ex: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids of prompt+response+EOS, and labels with the prompt masked out (-100)."""
    from reasoner.prompts import encode_prompt

    prompt_ids = encode_prompt(tokenizer, ex.prompt)
    response_ids = tokenizer(ex.response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    return ids, labels


def response_loss(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over response tokens, and how many there were."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    target = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((target != -100).sum())


def run(cfg) -> Path:
    from reasoner.models import load_policy, load_tokenizer, save_model
    from reasoner.utils import checkpoint as ckpt
    from reasoner.utils.guard import RefusedStep, check_loss, require_finite_model, stop_error
    from reasoner.utils.run import prepare_run_dir, write_text_atomic
    from reasoner.utils.train import TrainState, epoch_order, pad_batch

    if cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise UserError("config: batch_size and grad_accum must be >= 1")
    if not cfg.train_file:
        from reasoner.tasks import get_task

        get_task(cfg.data.name).require_gold_solutions()  # before any model loads
    early_tokenizer = load_tokenizer(cfg.model)  # the data (and its prompt lengths) is checked before the model loads
    examples = (trajectory_examples(cfg.train_file, cfg.correct_only, early_tokenizer, cfg.data) if cfg.train_file
                else gold_examples(cfg, early_tokenizer))
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_policy(cfg.model)
    encoded = [tokenize_example(tokenizer, ex, cfg.max_length) for ex in examples]
    run_dir = prepare_run_dir(cfg, "train-sft")

    plan = TrainState(cfg, model, len(encoded), run_dir, "policy", log)
    per_step, steps_per_epoch, total_steps = plan.per_step, plan.steps_per_epoch, plan.total_steps
    optimizer, scheduler, step, metrics, ckpt_root = plan.optimizer, plan.scheduler, plan.step, plan.metrics, plan.ckpt_root
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    log(f"train-sft: {len(encoded)} examples, {total_steps} steps of {per_step}, run_dir={run_dir}")
    model.train()
    started, tokens_seen, loss_value = time.time(), 0, None
    with progress() as bar:
        task_id = bar.add_task("train-sft", total=total_steps, completed=step, info="")
        while step < total_steps:
            epoch, offset = divmod(step, steps_per_epoch)
            order = epoch_order(len(encoded), cfg.seed, epoch)
            optimizer.zero_grad(set_to_none=True)
            micro = [order[(offset * per_step + i) % len(order)] for i in range(per_step)]
            batch_loss, batch_tokens = 0.0, 0
            n_resp = sum(sum(1 for x in encoded[j][1][1:] if x != -100) for j in micro)
            for m in range(cfg.grad_accum):
                idx = micro[m * cfg.batch_size:(m + 1) * cfg.batch_size]
                ids, mask, labels = pad_batch([encoded[j][0] for j in idx], pad_id, [encoded[j][1] for j in idx])
                loss_sum, n_tok = response_loss(model, ids.to(device), mask.to(device), labels.to(device))
                (loss_sum / max(1, n_resp)).backward()
                batch_loss += loss_sum.item()
                batch_tokens += int(mask.sum())
            loss_value = batch_loss / max(1, n_resp)
            try:
                check_loss("loss", loss_value)
                grad_norm = plan.guard.step()
            except RefusedStep as err:
                raise stop_error("train-sft", step + 1, err, ckpt_root) from None
            scheduler.step()
            step += 1
            tokens_seen += batch_tokens
            if step % cfg.log_every == 0 or step == total_steps:
                rec = {"step": step, "loss": round(loss_value, 5), "lr": scheduler.get_last_lr()[0],
                       "grad_norm": round(float(grad_norm), 4), "epoch": round(step / steps_per_epoch, 3),
                       "tokens_per_s": round(tokens_seen / max(1e-9, time.time() - started), 1)}
                if cfg.eval_every and step % cfg.eval_every == 0:
                    rec["eval_accuracy"] = evaluate(model, tokenizer, cfg)
                    model.train()
                metrics.write(rec)
                bar.update(task_id, info=f"loss {loss_value:.4f}")
            bar.update(task_id, completed=step)
            if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
                ckpt.save_checkpoint(ckpt_root, step, {"policy": model},
                                     {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})

    model.eval()
    final_dir = run_dir / "final"
    require_finite_model({"policy": model}, "train-sft: final model", ckpt_root)
    save_model(model, tokenizer, final_dir, merge_lora=True)
    if getattr(model, "peft_config", None):
        save_model(model, tokenizer, run_dir / "adapter")
    summary = {"steps": step, "examples": len(encoded), "final_loss": loss_value,
               "wall_s": round(time.time() - started, 1), "model_dir": str(final_dir)}
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(f"train-sft done: {step} steps, model saved to {final_dir}")
    return final_dir


def evaluate(model, tokenizer, cfg) -> float:
    """Greedy accuracy on held-out problems of the same task (used for eval_every)."""
    from reasoner.stages.decode import greedy_accuracy, held_out

    return greedy_accuracy(model, tokenizer, held_out(cfg.data, cfg.eval_problems), cfg.model)
