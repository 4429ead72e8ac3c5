"""Supervised fine-tuning as a recipe: the loss on response tokens only.

Trains on the gold solutions of a task, or on collected trajectories (rejection-sampling FT when
only correct ones are kept; train-rl algo=rft is the same loss on its own batches). Full
fine-tuning or LoRA; the loop (`reasoner.train.loop`) resumes it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from reasoner.errors import UserError
from reasoner.evaluation import check_eval_split
from reasoner.train.recipe import EpochBatches, Optim, RecipeBase, Step, device_of, pad_id
from reasoner.utils.guard import check_loss
from reasoner.utils.train import pad_batch


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
    """Summed next-token cross-entropy over response tokens (labels != -100), and how many there were."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
    target = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((target != -100).sum())


class SFTRecipe(RecipeBase):
    """`reasoner train-sft`: batch_size x grad_accum examples per step, the mean loss per response token."""

    name = "train-sft"

    def __init__(self, cfg):
        from reasoner.models import load_policy, load_tokenizer

        if cfg.batch_size < 1 or cfg.grad_accum < 1:
            raise UserError("config: batch_size and grad_accum must be >= 1")
        check_eval_split(cfg)
        self.cfg = cfg
        if not cfg.train_file:
            from reasoner.tasks import get_task

            get_task(cfg.data.name).require_gold_solutions()  # before any model loads
        early_tokenizer = load_tokenizer(cfg.model)  # the data (and its prompt lengths) is checked before the model loads
        examples = (trajectory_examples(cfg.train_file, cfg.correct_only, early_tokenizer, cfg.data) if cfg.train_file
                    else gold_examples(cfg, early_tokenizer))
        torch.manual_seed(cfg.seed)
        self.model, self.tokenizer = load_policy(cfg.model)
        self.encoded = [tokenize_example(self.tokenizer, ex, cfg.max_length) for ex in examples]
        self.batches = EpochBatches(len(self.encoded), cfg.batch_size * cfg.grad_accum, cfg.seed)
        self.total_steps = cfg.max_steps or self.batches.total(cfg.epochs)
        self.final_loss = None

    def setup(self, out_dir: Path) -> None:
        self.opt = Optim(self.model, "policy", self.cfg.optim.lr, self.cfg.optim, self.total_steps)
        self.model.train()

    def describe(self) -> str:
        return f"train-sft: {len(self.encoded)} examples, {self.total_steps} steps of {self.batches.size}"

    def models(self) -> dict:
        return {"policy": self.model}

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)

    def train_step(self, step: int) -> Step:
        """The step's global batch, this rank's share of it in micro-batches of batch_size
        (all of it on one process): the loss per response token of the whole batch."""
        from reasoner import dist

        cfg, device = self.cfg, device_of(self.model)
        picked = self.batches.indices(step)
        n_resp = sum(sum(1 for x in self.encoded[j][1][1:] if x != -100) for j in picked)
        mine, scale = dist.shard(picked), dist.loss_scale(n_resp)
        loss_sum, tokens = 0.0, 0
        for m in range(0, len(mine), cfg.batch_size):
            idx = mine[m:m + cfg.batch_size]
            ids, mask, labels = pad_batch([self.encoded[j][0] for j in idx], pad_id(self.tokenizer),
                                          [self.encoded[j][1] for j in idx])
            micro_sum, _ = response_loss(self.model, ids.to(device), mask.to(device), labels.to(device))
            self.opt.backward(micro_sum * scale)
            loss_sum += micro_sum.item()
            tokens += int(mask.sum())
        self.final_loss = dist.all_sum(loss_sum) / max(1, n_resp)
        check_loss("loss", self.final_loss)
        grad_norm = self.opt.step()
        return Step({"loss": round(self.final_loss, 5), "lr": self.opt.lr, "grad_norm": round(float(grad_norm), 4),
                     "epoch": self.batches.epoch(step + 1)}, tokens)

    def evaluate(self) -> float:
        from reasoner.evaluation import held_out_accuracy

        return held_out_accuracy(self.model, self.tokenizer, self.cfg.data, self.cfg.model, self.cfg.eval_problems,
                                 split=self.cfg.eval_split)

    def save_final(self, out_dir: Path, last_eval: float | None) -> dict:
        from reasoner.models import is_peft, save_model

        self.model.eval()
        final_dir = save_model(self.model, self.tokenizer, out_dir / "final", merge_lora=True)
        if is_peft(self.model):
            save_model(self.model, self.tokenizer, out_dir / "adapter")
        return {"steps": self.total_steps, "examples": len(self.encoded), "final_loss": self.final_loss,
                "model_dir": str(final_dir)}
