"""The `reasoner` command line: options and key=value overrides -> typed config -> stage.

Heavy libraries (torch, transformers) are imported inside the commands so `--help` is instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from reasoner.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train and search the multi-step reasoning of language models. "
    "Every command takes Hydra-style overrides (key=value); --dry-run prints the resolved config.",
)

OVERRIDES = typer.Argument(None, help="Config overrides, e.g. model=smollm2-135m data.limit=20 optim.lr=3e-4")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the resolved config and exit.")

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


def _run(command: str, overrides: Optional[List[str]], dry_run: bool, stage: Callable[[object], object]) -> None:
    """Load the config, print it for --dry-run, else hand it to the stage; user errors exit 2."""
    from reasoner import config

    try:
        cfg = config.load(command, normalize_overrides(list(overrides or [])))
        if dry_run:
            typer.echo(config.to_yaml(cfg), nl=False)
            return
        if hasattr(cfg, "run_dir"):  # a bad run_dir stops before data or a model is loaded
            from reasoner.utils.run import check_run_dir

            check_run_dir(cfg.run_dir)
        stage(cfg)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)


@app.command("train-sft")
def train_sft(overrides: Optional[List[str]] = OVERRIDES, dry_run: bool = DRY_RUN) -> None:
    """Supervised fine-tuning on gold solutions or collected trajectories (loss on responses only)."""

    def stage(cfg):
        from reasoner.stages import sft

        sft.run(cfg)

    _run("train_sft", overrides, dry_run, stage)


@app.command("decode")
def decode(
    overrides: Optional[List[str]] = OVERRIDES,
    dry_run: bool = DRY_RUN,
    search: Optional[str] = typer.Option(None, "--search", help="Search method (same as search=NAME)."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Budget sweep, e.g. n=1,2,4,8 (same as sweep=[1,2,4,8])."),
) -> None:
    """Decode a dataset (greedy, sampling, or a search method), grade, and report accuracy."""
    extra = [f"search={search}"] if search else []
    if sweep is not None:
        key, _, values = sweep.rpartition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if key not in ("", "n") or not items or not all(v.isdigit() and int(v) > 0 for v in items):
            typer.echo(f"error: --sweep '{sweep}': expected budgets like n=1,2,4,8", err=True)
            raise typer.Exit(2)
        extra.append(f"sweep=[{','.join(items)}]")

    def stage(cfg):
        from reasoner.stages import decode as decode_stage

        decode_stage.run(cfg)

    _run("decode", list(overrides or []) + extra, dry_run, stage)


def _stage_command(name: str, command: str, module: str, doc: str):
    """Register a subcommand whose whole job is `reasoner.stages.<module>.run(cfg)`."""

    def handler(overrides: Optional[List[str]] = OVERRIDES, dry_run: bool = DRY_RUN) -> None:
        def stage(cfg):
            import importlib

            importlib.import_module(f"reasoner.stages.{module}").run(cfg)

        _run(command, overrides, dry_run, stage)

    handler.__doc__ = doc
    app.command(name)(handler)


_stage_command("collect", "collect", "collect",
               "Sample n solutions per problem, grade them, label steps (shepherd/omegaprm), select; resumable.")
_stage_command("train-prm", "train_prm", "train_prm",
               "Train a process reward model: prm=discriminative (hard/soft step labels) or prm=implicit (PRIME).")
_stage_command("eval-prm", "eval_prm", "eval_prm",
               "Judge a PRM: step accuracy/AUC and first-error F1 against ground truth or MC labels.")
_stage_command("train-rl", "train_rl", "train_rl",
               "Improve the policy by RL: online algo=grpo|rloo|ppo|prime|rlep, offline algo=oreo|rft|dpo.")
_stage_command("convert", "convert", "convert",
               "Convert between trajectories, the TRL PRM format and Math-Shepherd text.")


@app.command("recipe")
def recipe(
    name: str = typer.Argument(..., help="The recipe: gym (every method on the arithmetic-gym organism)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Overrides passed to every command (e.g. model.device=cuda)."),
    quick: bool = typer.Option(False, "--quick", help="The same pipeline at small size, one seed (<= 20 minutes on 2 cores)."),
    toy: bool = typer.Option(False, "--toy", help="A smoke run of every stage (CI); its numbers mean nothing."),
    out: Optional[str] = typer.Option(None, "--out", help="Directory of the runs (default runs/recipe-gym-<size>)."),
    jobs: int = typer.Option(2, "--jobs", help="Commands run side by side (one torch thread each on a 2-core CPU)."),
    report: Optional[str] = typer.Option(None, "--report", help="Where the results page goes (default <out>/gym.md)."),
    report_only: bool = typer.Option(False, "--report-only", help="Rebuild the page from finished runs; run nothing."),
) -> None:
    """Run a whole pipeline stage by stage (resumable: re-run to continue) and write its results page."""
    from reasoner.recipes import run_recipe

    if quick and toy:
        typer.echo("error: --quick and --toy exclude each other", err=True)
        raise typer.Exit(2)
    try:
        page = run_recipe(name, "toy" if toy else "quick" if quick else "full", out, jobs, report,
                          list(overrides or []), report_only)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"results: {page}")


@app.command("models")
def models() -> None:
    """List the model presets."""
    from reasoner.models import describe_presets

    for name, description in describe_presets():
        typer.echo(f"{name:16s} {description}")


def main() -> None:  # pragma: no cover - console entry for `python -m reasoner`
    app(prog_name="reasoner")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
