"""`reasoner train-rl algo=oreo|rft|dpo`: offline RL from collected trajectories (ALGORITHMS.md §6).

Each round is the offline recipe (`reasoner.offline.recipe.OfflineRecipe`, the algorithm from
the registry) run by the one loop. `rounds=K` is iterative: round k>1 collects with round k-1's
policy (balanced selection, the same code as `reasoner collect`) into run_dir/round-k/collect and
trains again from round k-1's policy and value model, with that round's starting policy as the
reference; every round's data and models are kept, and run_dir/final (and value/) are the last
round's. A round whose summary.json and final/ exist is not run again.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from reasoner.errors import UserError
from reasoner.evaluation import check_eval_split
from reasoner.utils.progress import log


def validate(cfg, algorithm) -> None:
    """Config checks that need no model or data; all before anything is written."""
    checks = [
        (cfg.batch_size >= 1, f"batch_size must be >= 1 (got {cfg.batch_size})"),
        (cfg.epochs > 0, f"epochs must be > 0 (got {cfg.epochs})"),
        (cfg.steps >= 0, f"steps must be >= 0 (0: no cap; got {cfg.steps})"),
        (cfg.rounds >= 1, f"rounds must be >= 1 (got {cfg.rounds})"),
        (cfg.max_length >= 2, f"max_length must be >= 2 (got {cfg.max_length})"),
        (cfg.optim.lr > 0, f"optim.lr must be > 0 (got {cfg.optim.lr})"),
        (cfg.log_every >= 1, f"log_every must be >= 1 (got {cfg.log_every})"),
        (cfg.eval_every >= 0 and cfg.save_every >= 0 and cfg.eval_problems >= 0,
         "eval_every, save_every and eval_problems must be >= 0"),
        (not cfg.model.quantization or cfg.model.lora.enabled,
         f"model.quantization={cfg.model.quantization} trains only adapters: set model.lora.enabled=true"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"config: {message}")
    check_eval_split(cfg)
    algorithm.validate(cfg)
    from reasoner.dist.context import env_world_size
    from reasoner.dist.launch import check_world

    check_world("train-rl", cfg, env_world_size())


def collect_round(cfg, model_cfg, out_dir: Path, k: int) -> Path:
    """Sample with the current policy (balanced selection) on cfg.data's train split."""
    from reasoner.config import CollectConfig, SelectionConfig
    from reasoner.stages import collect

    ccfg = CollectConfig(
        run_dir=str(out_dir),
        model=replace(model_cfg, lora=replace(model_cfg.lora, enabled=False)),
        data=replace(cfg.data, split="train"),
        generation=replace(cfg.generation, seed=cfg.generation.seed + k),
        selection=SelectionConfig(name="balanced"),
        seed=cfg.seed + k,
    )
    collect.run(ccfg)
    return out_dir / collect.TRAJECTORIES


def _round(cfg, algorithm, k: int, run_dir: Path, model_cfg, value_cfg, trajs, separator: str) -> tuple[dict, list]:
    """Round k's summary (run now, or read back when it finished before) and its data."""
    from reasoner.offline.data import read_offline_trajectories
    from reasoner.offline.recipe import OfflineRecipe
    from reasoner.train import LoopOptions, train

    out_dir = run_dir if cfg.rounds == 1 else run_dir / f"round-{k}"
    label = f"round {k}/{cfg.rounds}" if cfg.rounds > 1 else ""
    done = out_dir / "summary.json"
    if cfg.resume and done.exists() and (out_dir / "final").is_dir():
        log(f"train-rl {label or cfg.algo.name}: already done ({done}), skipping")
        return json.loads(done.read_text(encoding="utf-8")), trajs
    if k > 1 or trajs is None:
        data_path = collect_round(cfg, model_cfg, out_dir / "collect", k)
        trajs = read_offline_trajectories(str(data_path))
        algorithm.check_data(trajs, str(data_path))
    recipe = OfflineRecipe(cfg, model_cfg, value_cfg, trajs, separator, label)
    return train(recipe, out_dir, LoopOptions.from_config(cfg)), trajs


def run(cfg) -> dict:
    from reasoner.algos.registry import get_algorithm
    from reasoner.models import load_tokenizer
    from reasoner.offline.data import read_offline_trajectories
    from reasoner.prompts import bound_prompts
    from reasoner.tasks import get_task
    from reasoner.train import check_sinks
    from reasoner.utils.io import copy_dir_atomic, write_json_atomic
    from reasoner.utils.run import prepare_run_dir

    algorithm = get_algorithm(cfg.algo.name)
    validate(cfg, algorithm)
    check_sinks(cfg.tensorboard, cfg.wandb)
    if cfg.train_file is None and cfg.rounds == 1:
        log("note: no train_file: collecting with the starting policy first (selection=balanced)")
    task = get_task(cfg.data.name)
    trajs = None
    if cfg.train_file is not None:
        trajs = bound_prompts(read_offline_trajectories(cfg.train_file), load_tokenizer(cfg.model), cfg.data)
        algorithm.check_data(trajs, cfg.train_file)
    run_dir = prepare_run_dir(cfg, "train-rl")
    model_cfg, value_cfg, rounds = cfg.model, cfg.model, []
    for k in range(1, cfg.rounds + 1):
        summary, trajs = _round(cfg, algorithm, k, run_dir, model_cfg, value_cfg, trajs, task.step_separator)
        rounds.append(summary)
        model_cfg = replace(cfg.model, name_or_path=summary["model_dir"])
        value_cfg = replace(cfg.model, name_or_path=summary.get("value_dir") or summary["model_dir"])
    if cfg.rounds == 1:
        return rounds[0]
    last = run_dir / f"round-{cfg.rounds}"
    copy_dir_atomic(last / "final", run_dir / "final")
    if (last / "value").is_dir():
        copy_dir_atomic(last / "value", run_dir / "value")
    summary = {"algo": cfg.algo.name, "rounds": rounds, "model_dir": str(run_dir / "final"),
               "eval_accuracy_per_round": [r.get("eval_accuracy") for r in rounds]}
    if (run_dir / "value").is_dir():
        summary["value_dir"] = str(run_dir / "value")
    write_json_atomic(run_dir / "summary.json", summary)
    return summary
