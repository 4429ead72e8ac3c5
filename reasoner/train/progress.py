"""Progress of a training run: a rich bar on a terminal, a periodic one-line log otherwise.

Off a terminal (a log file, a job scheduler, a pipe) a bar would print nothing useful, so the
run says where it is every `every_s` seconds, on its first step and on its last one:

    train-rl grpo: step 120/400 loss 0.0123 12.3k tok/s eta 3m
"""

from __future__ import annotations

import sys
import time

from reasoner.utils.progress import log, progress


def human_count(x: float) -> str:
    """12345 -> '12.3k', 2.5e6 -> '2.5M', 87.2 -> '87.2'."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{suffix}"
    return f"{x:.1f}"


def human_duration(seconds: float) -> str:
    """42 -> '42s', 75 -> '1m15s', 180 -> '3m', 3700 -> '1h01m' (seconds only under 10 minutes)."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60:02d}s" if s % 60 and s < 600 else "")
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def metrics_text(headline: dict, tokens_per_s: float | None, eta_s: float | None) -> str:
    """`loss 0.0123 12.3k tok/s eta 3m` (only the parts that are known)."""
    parts = [f"{key} {value:.4g}" for key, value in headline.items() if isinstance(value, (int, float))]
    if tokens_per_s is not None:
        parts.append(f"{human_count(tokens_per_s)} tok/s")
    if eta_s is not None:
        parts.append(f"eta {human_duration(eta_s)}")
    return " ".join(parts)


def status_line(step: int, total: int, headline: dict, tokens_per_s: float | None, eta_s: float | None) -> str:
    """`step 120/400 loss 0.0123 12.3k tok/s eta 3m`."""
    return " ".join(x for x in (f"step {step}/{total}", metrics_text(headline, tokens_per_s, eta_s)) if x)


class StepProgress:
    """`with StepProgress(name, total, start) as bar: bar.update(step, {...}, tok_s)`."""

    def __init__(self, name: str, total: int, start: int = 0, interactive: bool | None = None, every_s: float = 30.0):
        self.name, self.total, self.start = name, total, start
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.every_s = every_s
        self.began = time.monotonic()
        self.last_line = None
        self._bar = self._task = None

    def __enter__(self) -> "StepProgress":
        if self.interactive:
            self._bar = progress().__enter__()
            self._task = self._bar.add_task(self.name, total=self.total, completed=self.start, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def eta(self, step: int) -> float | None:
        done = step - self.start
        return (time.monotonic() - self.began) / done * (self.total - step) if done > 0 else None

    def update(self, step: int, headline: dict, tokens_per_s: float | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=metrics_text(headline, tokens_per_s, None))
            return
        now = time.monotonic()
        if self.last_line is None or step == self.total or now - self.last_line >= self.every_s:
            self.last_line = now
            log(f"{self.name}: {status_line(step, self.total, headline, tokens_per_s, self.eta(step))}")
