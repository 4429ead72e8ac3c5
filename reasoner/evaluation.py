"""Evaluation every command shares: sampling params from a config, the held-out problems of a
training run, and greedy accuracy of an in-memory model on them (the `eval_every` hook of every
trainer and the final accuracy of offline RL). Grading itself is the task's (`Task.grade`).
"""

from __future__ import annotations


def sampling_params(gen_cfg, stop: list[str] | None = None):
    """config.GenerationConfig -> generation.SamplingParams (stop strings: the config's unless given)."""
    from reasoner.generation.base import SamplingParams

    return SamplingParams(
        n=gen_cfg.n, temperature=gen_cfg.temperature, top_p=gen_cfg.top_p,
        max_new_tokens=gen_cfg.max_new_tokens, stop=list(stop if stop is not None else gen_cfg.stop),
        seed=gen_cfg.seed,
    )


EVAL_SPLITS = ("test", "validation")


def check_eval_split(cfg) -> None:
    """Fail before training, not at the first evaluation, on an eval_split that is not held out."""
    from reasoner.errors import UserError

    if cfg.eval_split not in EVAL_SPLITS:
        raise UserError(f"config: eval_split must be one of {', '.join(EVAL_SPLITS)}, got '{cfg.eval_split}'")


def held_out(data_cfg, problems: int, split: str = "test"):
    """The evaluation problems of a training run: the first `problems` of the test (or validation)
    split, with corruption off and the draw's default seed, so runs trained on other draws
    (data.seed) are evaluated on the same problems (`reasoner decode data.split=SPLIT
    data.num_problems=N`)."""
    from dataclasses import fields, replace

    seed = next(f.default for f in fields(data_cfg) if f.name == "seed")
    return replace(data_cfg, split=split, seed=seed, num_problems=problems, limit=problems, corrupt_fraction=0.0)


def greedy_accuracy(model, tokenizer, data_cfg, model_cfg, batch_size: int = 64, max_new_tokens: int = 128) -> float:
    """Greedy pass@1 of an in-memory model on a task's problems; the model's train/eval mode is kept."""
    from reasoner.generation import HFGenerator
    from reasoner.generation.base import SamplingParams
    from reasoner.prompts import build_prompt
    from reasoner.tasks import get_task

    task = get_task(data_cfg.name).derive(fallback_last_number=data_cfg.answer_fallback)
    problems = task.load_problems(data_cfg)
    prompts = [build_prompt(p.prompt, tokenizer, model_cfg.chat_template, model_cfg.system_prompt, data_cfg.name) for p in problems]
    was_training = model.training
    model.eval()
    outs = HFGenerator(model, tokenizer, batch_size=batch_size).generate(
        prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens))
    if was_training:
        model.train()
    correct = [task.grade(o[0].text, p).correct for p, o in zip(problems, outs)]
    return sum(correct) / max(1, len(correct))


def held_out_accuracy(model, tokenizer, data_cfg, model_cfg, problems: int, max_new_tokens: int = 128,
                      split: str = "test") -> float:
    """Greedy pass@1 on the first `problems` held-out problems of `data_cfg`'s task (test split by default)."""
    return greedy_accuracy(model, tokenizer, held_out(data_cfg, problems, split), model_cfg, max_new_tokens=max_new_tokens)
