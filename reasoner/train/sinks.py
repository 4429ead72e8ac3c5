"""Where a training run's metrics go: metrics.jsonl always, TensorBoard and W&B when asked.

One sink for every trainer (train-sft, train-prm, train-rl online and offline). On resume the
steps after the checkpoint run again, so what they logged before the crash is dropped first:
metrics.jsonl lines past the resumed step are removed and TensorBoard events past it purged.
"""

from __future__ import annotations

from pathlib import Path

from reasoner.errors import UserError

METRICS = "metrics.jsonl"


def check_sinks(tensorboard: bool, wandb: bool) -> None:
    """UserError (before anything is loaded or written) when an asked-for sink is not installed."""
    for flag, wanted, module in (("tensorboard", tensorboard, "torch.utils.tensorboard"), ("wandb", wandb, "wandb")):
        if not wanted:
            continue
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"config: {flag}=true needs the {flag} package (pip install {flag})") from None


class MetricSink:
    """metrics.jsonl (append-only, one line per record) + optional TensorBoard / W&B scalars."""

    def __init__(self, out_dir: Path, resume_step: int = 0, tensorboard: bool = False, wandb: bool = False,
                 config: dict | None = None):
        from reasoner.utils.io import keep_jsonl

        out_dir = Path(out_dir)
        self.path = out_dir / METRICS
        keep_jsonl(self.path, lambda rec: isinstance(rec, dict) and rec.get("step", 0) <= resume_step)
        check_sinks(tensorboard, wandb)
        self.tb = self.wb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resume_step + 1)
        if wandb:
            import wandb as wb

            self.wb = wb.init(project="reasoner", dir=str(out_dir), name=out_dir.name, config=config or {},
                              resume="allow")

    def write(self, record: dict) -> None:
        from reasoner.utils.io import append_jsonl

        append_jsonl(self.path, [record])
        step = record.get("step", 0)
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and k != "step"}
        if self.tb is not None:
            for key, value in scalars.items():
                self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wb is not None:
            self.wb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wb is not None:
            self.wb.finish()
            self.wb = None
