"""`reasoner train-prm`: train a process reward model (ALGORITHMS.md §3).

prm=discriminative (step labels at step tags; tokens or scalar head; hard or soft labels) or
prm=implicit (PRIME's outcome-only BCE on the summed log-ratio to the starting model). Data:
Trajectory jsonl with step_labels (`reasoner collect labels=...`) or TRL PRM records. The recipe
is `reasoner.prm.train.PRMRecipe`, run by the one loop; run_dir/final is the PRM directory
(`prm.model`: model + prm.json [+ reference/]) that `scoring.load_scorer` reads.
"""

from __future__ import annotations

from reasoner.errors import UserError


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


def run(cfg) -> dict:
    from reasoner.models import load_tokenizer
    from reasoner.prm.evaluate import reference_labels
    from reasoner.prm.examples import count_labelled, read_examples
    from reasoner.prm.model import PRMSpec
    from reasoner.prm.train import PRMRecipe
    from reasoner.prompts import bound_prompts
    from reasoner.tasks import get_task
    from reasoner.train import LoopOptions, check_sinks, train
    from reasoner.utils.run import prepare_run_dir

    validate(cfg)
    check_sinks(cfg.tensorboard, cfg.wandb)
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
    recipe = PRMRecipe(cfg, spec, examples, eval_examples, task)
    return train(recipe, prepare_run_dir(cfg, "train-prm"), LoopOptions.from_config(cfg))
