"""Training checkpoints that resume exactly: weights, optimiser, scheduler, RNG, data position.

A checkpoint is written into a temp directory and renamed into place, so a crash leaves either
the previous checkpoint or the new one, never half of one. Only trainable parameters are
stored (all of them for full fine-tuning, the adapter for LoRA).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

PREFIX = "step-"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(ckpt_root: Path, step: int, models: dict[str, torch.nn.Module], state: dict[str, Any], keep: int = 1) -> Path:
    """Atomically write step-N/ with each model's trainable weights and the trainer state."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"{PREFIX}{step}"
    tmp = ckpt_root / f".tmp-{PREFIX}{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    payload = {"weights": {name: trainable_state(m) for name, m in models.items()}, "state": state, "rng": rng_state(), "step": step}
    torch.save(payload, tmp / "trainer.pt")
    with open(tmp / "trainer.pt", "rb") as fh:
        os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp dirs of a crashed save are ignored)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "trainer.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def load_checkpoint(path: Path, models: dict[str, torch.nn.Module]) -> dict[str, Any]:
    """Restore weights into `models` and the RNG; return the saved trainer state (with 'step')."""
    payload = torch.load(Path(path) / "trainer.pt", map_location="cpu", weights_only=False)
    for name, model in models.items():
        params = dict(model.named_parameters())
        with torch.no_grad():
            for pname, tensor in payload["weights"][name].items():
                params[pname].copy_(tensor.to(params[pname].device, params[pname].dtype))
    set_rng_state(payload["rng"])
    return {**payload["state"], "step": payload["step"]}
