"""`reasoner train-rl algo=grpo|rloo|ppo|prime|rlep`: online RL on self-generated rollouts.

Builds the online recipe (`reasoner.rl.recipe.OnlineRecipe`) with the chosen algorithm from
the registry (`reasoner.algos.registry`) and hands it to the one loop (`reasoner.train.loop`).
Every check that needs no model runs first, and data and the model load before run_dir is
written, so a bad input leaves nothing behind.
"""

from __future__ import annotations

from reasoner.errors import UserError


def run(cfg) -> dict:
    import torch

    from reasoner.algos.registry import get_algorithm
    from reasoner.models import load_policy, load_tokenizer
    from reasoner.prompts import bound_problems
    from reasoner.rl.recipe import OnlineRecipe, validate
    from reasoner.rl.rewards import RewardModel
    from reasoner.tasks import get_task
    from reasoner.train import LoopOptions, check_sinks, train
    from reasoner.utils.run import prepare_run_dir

    algorithm_cls = get_algorithm(cfg.algo.name)
    validate(cfg, algorithm_cls)
    check_sinks(cfg.tensorboard, cfg.wandb)
    task = get_task(cfg.data.name).derive(fallback_last_number=cfg.data.answer_fallback)
    problems = task.load_problems(cfg.data)
    if not problems:
        raise UserError(f"data '{cfg.data.name}': no training problems")
    problems = bound_problems(problems, load_tokenizer(cfg.model), cfg.model, cfg.data)  # before the model loads
    reward_model = RewardModel(cfg.reward, task)
    algorithm = algorithm_cls(cfg)  # reads its files (RLEP's pool) before the model loads
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_policy(cfg.model)
    problems = bound_problems(problems, tokenizer, cfg.model, cfg.data, cfg.generation.max_new_tokens, model)
    recipe = OnlineRecipe(cfg, algorithm, model, tokenizer, problems, task, reward_model)
    return train(recipe, prepare_run_dir(cfg, "train-rl"), LoopOptions.from_config(cfg))
