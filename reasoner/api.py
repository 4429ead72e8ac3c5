"""The Python API: every CLI command as a function, with the same configs and the same errors.

    import reasoner
    summary = reasoner.run("train-rl", ["algo=grpo", "steps=50", "run_dir=runs/grpo"])
    summary["final_eval_accuracy"]

`run` composes the command's config exactly as the CLI does (overrides, group choices, the CLI's
short names such as `model=PATH` and `n=16`), checks run_dir before anything loads, runs the
stage and returns the run's summary (the dict summary.json holds). Bad input raises
`reasoner.errors.UserError` with the CLI's one-line message, instead of exiting 2. Like the
CLI, this module sits above the stages: it is the one library module that runs them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from reasoner.errors import UserError

# CLI name -> (config schema / conf/<name>.yaml, module under reasoner/stages)
COMMANDS = {
    "train-sft": ("train_sft", "sft"),
    "decode": ("decode", "decode"),
    "collect": ("collect", "collect"),
    "train-prm": ("train_prm", "train_prm"),
    "eval-prm": ("eval_prm", "eval_prm"),
    "train-rl": ("train_rl", "train_rl"),
    "convert": ("convert", "convert"),
}

DATA_SUFFIXES = (".jsonl", ".json", ".parquet")

# Short names for the generation knobs users reach for most (`reasoner collect n=16 max_tokens=256`).
ALIASES = {
    "n": "generation.n",
    "temperature": "generation.temperature",
    "top_p": "generation.top_p",
    "max_tokens": "generation.max_new_tokens",
    "backend": "generation.backend",
}


def normalize_overrides(overrides: list[str]) -> list[str]:
    """Let users write `model=PATH`, `data=FILE.jsonl` and `task=arith` as they would expect.

    Hydra reads `model=X` as a config-group choice; a path that is not a group option becomes
    `model.name_or_path=X` (and `data=FILE` becomes the generic jsonl task reading FILE).
    """
    from reasoner.config import group_options

    out: list[str] = []
    for item in overrides:
        key, eq, value = item.partition("=")
        if key == "task" or key.startswith("task."):
            key = "data" + key[len("task"):]
            item = f"{key}={value}"
        if eq and key in ALIASES:
            key = ALIASES[key]
            item = f"{key}={value}"
        if eq and key == "model" and value not in group_options("model"):
            out += [f"model.name_or_path={value}"]
            continue
        if eq and key == "data" and value not in group_options("data"):
            if value.endswith(DATA_SUFFIXES) or Path(value).exists():
                out += ["data=jsonl", f"data.path={value}"]
                continue
        out.append(item)
    return out


def _command(command: str) -> tuple[str, str]:
    from reasoner.config import closest

    name = command.replace("_", "-")
    if name not in COMMANDS:
        guess = closest(name, COMMANDS)
        raise UserError(f"unknown command '{command}'" + (f" (did you mean '{guess}'?)" if guess else
                                                         f" (choose from {', '.join(COMMANDS)})"))
    return COMMANDS[name]


def load_config(command: str, overrides=None):
    """The typed config of `command` after `overrides` (the CLI's --dry-run), checked in full."""
    from reasoner import config

    return config.load(_command(command)[0], normalize_overrides(list(overrides or [])))


def run_config(command: str, cfg) -> dict:
    """Run `command`'s stage on an already loaded config; its summary."""
    _, module = _command(command)
    from reasoner.dist import is_main

    _join_processes(command, cfg)
    if hasattr(cfg, "run_dir") and is_main():  # a bad run_dir stops before data or a model is loaded
        from reasoner.utils.run import check_run_dir

        check_run_dir(cfg.run_dir)
    result = importlib.import_module(f"reasoner.stages.{module}").run(cfg)
    return result if isinstance(result, dict) else {}


def _join_processes(command: str, cfg) -> None:
    """Under torchrun (`reasoner launch`): check dist.* and join the process group before run_dir
    is touched, so rank 0 alone writes it. A command without a dist section runs on one process."""
    from reasoner import dist
    from reasoner.dist.context import env_world_size

    settings, n = getattr(cfg, "dist", None), env_world_size()
    if n > 1 and settings is None:
        raise UserError(f"{command} runs on one process (launch runs train-sft, train-prm and train-rl)")
    if settings is None:
        return
    dist.check(settings)
    if n > 1 and settings.strategy == "single":
        raise UserError(f"config: dist.strategy=single under {n} processes: use dist.strategy=ddp or deepspeed")
    dist.init_from_env(settings.backend)


def run(command: str, overrides=None) -> dict:
    """Run a CLI command from Python: `run("train-sft", ["max_steps=100"])` -> its summary."""
    return run_config(command, load_config(command, overrides))
