"""The one training loop: runs any `Recipe` from its first (or resumed) step to its last.

It owns everything around the steps, the same way for every trainer:
- progress: a rich bar on a terminal, else a periodic line (`train.progress`); tokens/s;
- the guard: a step the guard refuses (`utils.guard.RefusedStep`) stops the run with one line
  naming the step and the last good checkpoint (exit 2), and no final model is written;
- checkpoints every `save_every` steps (atomic, finite-only: `utils.checkpoint`) and exact resume
  from the last one (weights, the recipe's state, RNG);
- metrics: one record every `log_every` steps, on eval steps and on the last step, to the one
  sink (`train.sinks`: metrics.jsonl, TensorBoard, W&B); on resume the records past the
  checkpoint are dropped first, since those steps run again;
- the eval hook: `recipe.evaluate()` every `eval_every` steps (and on the last step unless the
  recipe reports its final accuracy itself);
- precision (`train.precision`, optim.precision): each step in fp32, or under bf16 autocast;
- the end: every model checked finite, `recipe.save_final`, summary.json (+ wall_s) written atomically;
- scale-out (`reasoner.dist`, options.dist): the strategy every optimiser is wrapped in; on N
  processes each step's metrics are averaged over the ranks (tokens summed), rank 0 alone
  logs, writes metrics, checkpoints, final/ and summary.json and runs the eval hook, and
  decides out_dir and the checkpoint to resume from for every rank.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from reasoner import dist
from reasoner.errors import UserError
from reasoner.train.precision import Precision
from reasoner.train.progress import StepProgress
from reasoner.train.sinks import MetricSink
from reasoner.utils import checkpoint as ckpt
from reasoner.utils.guard import RefusedStep, require_finite_model, stop_error
from reasoner.utils.progress import log
from reasoner.utils.settings import first_difference, plain

SUMMARY = "summary.json"


@dataclass
class LoopOptions:
    log_every: int = 1
    save_every: int = 0  # 0: no checkpoints
    eval_every: int = 0  # 0: no evaluation during training
    resume: bool = True
    tensorboard: bool = False
    wandb: bool = False
    config: dict | None = None  # the run's config, for W&B
    dist: object = None  # the run's DistConfig (None: one process, no strategy)
    precision: str = "fp32"  # the training steps' precision (train.precision: fp32 | bf16 autocast)

    @classmethod
    def from_config(cls, cfg) -> "LoopOptions":
        """The loop keys every training command has (eval_every where the command has it)."""
        from reasoner.config import to_dict

        return cls(log_every=max(1, cfg.log_every), save_every=cfg.save_every or 0,
                   eval_every=getattr(cfg, "eval_every", 0) or 0, resume=cfg.resume,
                   tensorboard=cfg.tensorboard, wandb=cfg.wandb, config=to_dict(cfg), dist=getattr(cfg, "dist", None),
                   precision=getattr(getattr(cfg, "optim", None), "precision", "fp32"))


class _Meter:
    """Wall time, tokens/s of the steps since the last record, the last evaluation."""

    def __init__(self):
        self.started = time.time()
        self.tokens = 0
        self.seconds = 0.0
        self.shown: float | None = None  # the rate of the last closed window
        self.last_eval: float | None = None

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    def rate(self) -> float | None:
        """Tokens/s of the open window (the last closed one's when it is empty)."""
        return round(self.tokens / max(self.seconds, 1e-9), 1) if self.seconds > 0 else self.shown

    def close_window(self) -> float:
        """The open window's tokens/s (0.0 when empty), starting a new window."""
        self.shown = self.rate() or 0.0
        self.tokens, self.seconds = 0, 0.0
        return self.shown


def train(recipe, out_dir, options: LoopOptions | None = None) -> dict:
    """Run `recipe` to its last step in `out_dir` (resuming from its last checkpoint when
    options.resume); returns the summary, also written to out_dir/summary.json."""
    options = options or LoopOptions()
    dist.activate(options.dist)
    out_dir = Path(dist.broadcast_object(str(out_dir)))  # rank 0 decides where the run goes
    if dist.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    ckpt_root = out_dir / "checkpoints"
    recipe.setup(out_dir)
    try:
        return _run(recipe, out_dir, ckpt_root, options)
    finally:
        getattr(recipe, "close", lambda: None)()  # a recipe written against the protocol may have none


def _run(recipe, out_dir: Path, ckpt_root: Path, options: LoopOptions) -> dict:
    precision = Precision(options.precision, recipe.models().values())
    start = _resume(recipe, ckpt_root, options.resume, options.config)
    recipe.start(start)
    sink = (MetricSink(out_dir, start, options.tensorboard, options.wandb, options.config) if dist.is_main()
            else _NoSink())
    if dist.is_main():
        log(recipe.describe() + f", out={out_dir}" + (f", {dist.world_size()} processes" if dist.initialized() else ""))
    meter = _Meter()
    try:
        with _progress(recipe, start) as bar:
            for step in range(start, recipe.total_steps):
                _one_step(recipe, step, options, ckpt_root, sink, meter, bar, precision)
    finally:
        sink.close()
    return _finish(recipe, out_dir, ckpt_root, meter)


class _NoSink:
    """Where the metrics of ranks other than 0 go."""

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, *args) -> None:
        pass


def _progress(recipe, start: int):
    return StepProgress(recipe.name, recipe.total_steps, start) if dist.is_main() else _Quiet()


# what only says where and how a run reports may change between a run and its resume
REPORTING = ("run_dir", "resume", "log_every", "save_every", "eval_every", "eval_problems", "eval_split",
             "tensorboard", "wandb", "dist.backend")


def _check_same_settings(checkpoint: Path, settings: dict | None) -> None:
    """UserError (on every rank) when the checkpoint was written under other settings: resuming
    would splice two configurations into one run."""
    old = ckpt.saved_settings(checkpoint)
    if old is None or settings is None:
        return
    changed = first_difference(old, plain(settings), REPORTING)
    if changed:
        key, was, now = changed
        raise UserError(f"checkpoint {checkpoint}: this run was started with {key}={was!r} (now {now!r}); "
                        "resume with the same settings, or use a new run_dir (or resume=false to start over)")


def _resume(recipe, ckpt_root: Path, resume: bool, settings: dict | None = None) -> int:
    """The step to start from: the last checkpoint's (its state loaded into the recipe), or 0.
    Rank 0 picks the checkpoint; every rank loads it (a shared run_dir)."""
    existing = ckpt.list_checkpoints(ckpt_root) if resume and dist.is_main() else []
    last = dist.broadcast_object(str(existing[-1]) if existing else None)
    if last is None:
        return 0
    _check_same_settings(Path(last), settings)
    with dist.full_weights(recipe.models().values(), modify=True):  # ZeRO-3: loaded whole, then partitioned
        state = ckpt.load_checkpoint(Path(last), recipe.models())
    recipe.load_state_dict(state)
    if dist.is_main():
        log(f"resumed from {last} (step {state['step']}/{recipe.total_steps})")
    return state["step"]


def _one_step(recipe, step: int, options: LoopOptions, ckpt_root: Path, sink: MetricSink, meter: _Meter, bar,
              precision: Precision) -> None:
    began = time.perf_counter()
    try:
        with precision.region():
            out = recipe.train_step(step)
    except RefusedStep as err:
        raise stop_error(recipe.name, step + 1, err, ckpt_root) from None
    out = out._replace(metrics=dist.mean_metrics(out.metrics), tokens=int(dist.all_sum(out.tokens)))
    meter.add(out.tokens, time.perf_counter() - began)
    done, last = step + 1, step + 1 == recipe.total_steps
    accuracy = _evaluate(recipe) if _eval_due(options.eval_every, done, last, recipe) else None
    if accuracy is not None:
        meter.last_eval = accuracy
    if done % options.log_every == 0 or last or accuracy is not None:
        record = {"step": done, **out.metrics, "tokens_per_s": meter.close_window()}
        if accuracy is not None:
            record["eval_accuracy"] = round(accuracy, 6)
        sink.write(record)
    bar.update(done, {k: out.metrics[k] for k in recipe.headline if k in out.metrics}, meter.rate())
    if options.save_every and done % options.save_every == 0 and not last:
        state = recipe.state_dict()  # on every rank: a strategy may gather its partitions
        with dist.full_weights(recipe.models().values()):
            if dist.is_main():
                ckpt.save_checkpoint(ckpt_root, done, recipe.models(), state, settings=options.config)
        dist.barrier()


def _evaluate(recipe) -> float | None:
    """The eval hook on rank 0 (every rank has the same weights); its accuracy on every rank."""
    with dist.full_weights(recipe.models().values()):
        accuracy = recipe.evaluate() if dist.is_main() else None
    return dist.broadcast_object(accuracy)


def _eval_due(every: int, done: int, last: bool, recipe) -> bool:
    """Every `every` steps; on the last step always, unless the recipe's final save evaluates."""
    if not every:
        return False
    if last:
        return recipe.eval_at_end
    return done % every == 0


def _finish(recipe, out_dir: Path, ckpt_root: Path, meter: _Meter) -> dict:
    from reasoner.utils.io import write_json_atomic

    summary = None
    with dist.full_weights(recipe.models().values()):  # ZeRO-3: final/ gets the whole weights
        require_finite_model(recipe.models(), f"{recipe.name}: final model", ckpt_root)
        if dist.is_main():
            summary = recipe.save_final(out_dir, meter.last_eval)
            summary["wall_s"] = round(time.time() - meter.started, 1)
            write_json_atomic(out_dir / SUMMARY, summary)
            log(f"{recipe.name}: done, {recipe.total_steps} steps in {summary['wall_s']} s -> {out_dir}")
    return dist.broadcast_object(summary)
