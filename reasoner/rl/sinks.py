"""Where per-step metrics go: metrics.jsonl always, TensorBoard and W&B when asked."""

from __future__ import annotations

from pathlib import Path

from reasoner.errors import UserError
from reasoner.utils.train import MetricsLog


class MetricSinks:
    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool = False, wandb: bool = False, config: dict | None = None):
        self.jsonl = MetricsLog(Path(run_dir) / "metrics.jsonl", resume_step=resume_step)
        self.tb = self.wb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("config: tensorboard=true needs the tensorboard package (pip install tensorboard)") from None
            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step + 1)
        if wandb:
            try:
                import wandb as wb
            except ImportError:
                raise UserError("config: wandb=true needs the wandb package (pip install wandb)") from None
            self.wb = wb.init(project="reasoner", dir=str(run_dir), config=config or {}, resume="allow")

    def write(self, record: dict) -> None:
        self.jsonl.write(record)
        step = record.get("step", 0)
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wb is not None:
            self.wb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()
