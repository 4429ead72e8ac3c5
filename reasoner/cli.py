"""The `reasoner` command line: options and key=value overrides -> typed config -> stage
(through reasoner.api, so the CLI and `reasoner.run(...)` load and run every command alike).

Heavy libraries (torch, transformers) are imported inside the commands so `--help` is instant.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from reasoner.api import normalize_overrides  # noqa: F401  (the CLI's override rules live in the API)
from reasoner.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train and search the multi-step reasoning of language models. "
    "Every command takes Hydra-style overrides (key=value); --dry-run prints the resolved config.",
)

OVERRIDES = typer.Argument(None, help="Config overrides, e.g. model=smollm2-135m data.limit=20 optim.lr=3e-4")
DRY_RUN = typer.Option(False, "--dry-run", help="Print the resolved config and exit.")


def _run(command: str, overrides: Optional[List[str]], dry_run: bool) -> None:
    """Load the config, print it for --dry-run, else run the stage (reasoner.api); user errors exit 2."""
    from reasoner import api, config
    from reasoner.dist.launch import mark_user_error

    try:
        cfg = api.load_config(command, overrides)
        if dry_run:
            typer.echo(config.to_yaml(cfg), nl=False)
            return
        api.run_config(command, cfg)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        mark_user_error(str(exc))
        raise typer.Exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)


@app.command("train-sft")
def train_sft(overrides: Optional[List[str]] = OVERRIDES, dry_run: bool = DRY_RUN) -> None:
    """Supervised fine-tuning on gold solutions or collected trajectories (loss on responses only)."""
    _run("train-sft", overrides, dry_run)


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

    _run("decode", list(overrides or []) + extra, dry_run)


def _stage_command(name: str, doc: str):
    """Register a subcommand whose whole job is to run its stage (reasoner.api.COMMANDS)."""

    def handler(overrides: Optional[List[str]] = OVERRIDES, dry_run: bool = DRY_RUN) -> None:
        _run(name, overrides, dry_run)

    handler.__doc__ = doc
    app.command(name)(handler)


_stage_command("collect", "Sample n solutions per problem, grade them, label steps (shepherd/omegaprm), select; resumable.")
_stage_command("train-prm", "Train a process reward model: prm=discriminative (hard/soft step labels) or prm=implicit (PRIME).")
_stage_command("eval-prm", "Judge a PRM: step accuracy/AUC and first-error F1 against ground truth or MC labels.")
_stage_command("train-rl", "Improve the policy by RL: online algo=grpo|rloo|ppo|prime|rlep, offline algo=oreo|rft|dpo.")
_stage_command("convert", "Convert between trajectories, the TRL PRM format and Math-Shepherd text.")


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
    rerun_changed: bool = typer.Option(False, "--rerun-changed",
                                       help="Finished jobs whose command or inputs changed: move them aside and run them again."),
) -> None:
    """Run a whole pipeline stage by stage (resumable: re-run to continue) and write its results page."""
    from reasoner.recipes import run_recipe

    if quick and toy:
        typer.echo("error: --quick and --toy exclude each other", err=True)
        raise typer.Exit(2)
    try:
        page = run_recipe(name, "toy" if toy else "quick" if quick else "full", out, jobs, report,
                          list(overrides or []), report_only, rerun_changed)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"results: {page}")


@app.command("launch", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def launch(
    command: str = typer.Argument(..., help="The training command: train-sft | train-prm | train-rl."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Its overrides (dist.strategy=deepspeed for ZeRO; default ddp)."),
    nproc: int = typer.Option(..., "--nproc", help="Processes per node (one per GPU; CPU: gloo)."),
    nnodes: int = typer.Option(1, "--nnodes", help="Nodes (run the same launch on each)."),
    rdzv: Optional[str] = typer.Option(None, "--rdzv", help="HOST:PORT every node meets at (with --nnodes > 1)."),
    show: bool = typer.Option(False, "--show", help="Print the torchrun command line and exit."),
) -> None:
    """Run a training command on N processes through torchrun (docs/distributed.md)."""
    from reasoner.dist import launch as L

    try:
        argv = L.torchrun_argv(command, list(overrides or []), nproc, nnodes, rdzv)
        if show:
            typer.echo(L.show(argv))
            return
        code = L.launch(command, list(overrides or []), nproc, nnodes, rdzv)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(code)


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
