"""Training checkpoints that resume exactly: weights, optimiser, scheduler, RNG, data position.

A checkpoint directory step-N/ holds two files and nothing is ever unpickled:
- tensors.safetensors: every tensor (trainable weights, optimiser moments and step counts, the
  torch/CUDA RNG byte states), bit for bit;
- trainer.json: everything else (scheduler state, step, optimiser hyper-parameters, the python
  and numpy RNG states, rollout counts, the replay pool), with tensors referenced by name.
Tuples, dicts with non-string keys and numpy arrays are tagged so they come back as they went in.
A checkpoint is written into a temp directory and renamed into place, so a crash leaves either
the previous checkpoint or the new one, never half of one; a non-finite tensor is never written.
Only trainable parameters are stored (all of them for full fine-tuning, the adapter for LoRA).
Checkpoints of older reasoners (a pickled trainer.pt) are refused, not loaded.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from reasoner.errors import UserError

PREFIX = "step-"
TENSORS = "tensors.safetensors"
STATE = "trainer.json"
LEGACY = "trainer.pt"
FORMAT = 2


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


# --------------------------------------------------------------------------- encoding


def encode(tree: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """`tree` as JSON-able data; its tensors are moved into `tensors` under their path."""
    if isinstance(tree, torch.Tensor):
        key = path or "tensor"
        while key in tensors:
            key += "'"
        tensors[key] = tree.detach().cpu().contiguous()
        return {"$tensor": key}
    if isinstance(tree, (bool, int, float, str)) or tree is None:
        return tree
    if isinstance(tree, tuple):
        return {"$tuple": [encode(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [encode(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]
    if isinstance(tree, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in tree):
            return {k: encode(v, tensors, f"{path}/{k}") for k, v in tree.items()}
        return {"$dict": [[encode(k, tensors, f"{path}/key"), encode(v, tensors, f"{path}/{k}")] for k, v in tree.items()]}
    import numpy as np

    if isinstance(tree, np.ndarray):
        return {"$ndarray": {"dtype": tree.dtype.str, "shape": list(tree.shape), "data": tree.ravel().tolist()}}
    if isinstance(tree, np.generic):
        return tree.item()
    raise TypeError(f"checkpoint: cannot store a {type(tree).__name__} at '{path}'")


def decode(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `encode` (plain JSON values only: nothing here can run code)."""
    if isinstance(data, list):
        return [decode(v, tensors) for v in data]
    if not isinstance(data, dict):
        return data
    if "$tensor" in data:
        return tensors[data["$tensor"]]
    if "$tuple" in data:
        return tuple(decode(v, tensors) for v in data["$tuple"])
    if "$dict" in data:
        return {decode(k, tensors): decode(v, tensors) for k, v in data["$dict"]}
    if "$ndarray" in data:
        import numpy as np

        spec = data["$ndarray"]
        return np.array(spec["data"], dtype=np.dtype(spec["dtype"])).reshape(spec["shape"])
    return {k: decode(v, tensors) for k, v in data.items()}


# --------------------------------------------------------------------------- save / load


def save_checkpoint(ckpt_root: Path, step: int, models: dict[str, torch.nn.Module], state: dict[str, Any], keep: int = 1,
                    settings: dict | None = None) -> Path:
    """Atomically write step-N/ with each model's trainable weights, the trainer state and the
    run's settings (what a resume is checked against); UserError (nothing written) if any
    weight or optimiser tensor is not finite."""
    from reasoner.utils.guard import require_finite
    from reasoner.utils.io import atomic_dir
    from safetensors.torch import save_file

    ckpt_root = Path(ckpt_root)
    tensors: dict[str, torch.Tensor] = {}
    payload = {"format": FORMAT, "step": step, "weights": {name: trainable_state(m) for name, m in models.items()},
               "state": state, "rng": rng_state()}
    if settings is not None:
        from reasoner.utils.settings import plain

        payload["settings"] = plain(settings)
    tree = encode(payload, tensors)
    require_finite(tensors, f"checkpoint {PREFIX}{step}", ckpt_root)
    final = ckpt_root / f"{PREFIX}{step}"
    with atomic_dir(final) as tmp:
        save_file(tensors, str(tmp / TENSORS))
        (tmp / STATE).write_text(json.dumps(tree), encoding="utf-8")
    for old in list_checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Checkpoints, oldest first: complete ones, and old-format ones (which `load_checkpoint`
    refuses with a message); temp dirs of a crashed save are ignored."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()
             and ((p / STATE).is_file() or (p / LEGACY).is_file())]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def load_checkpoint(path: Path, models: dict[str, torch.nn.Module]) -> dict[str, Any]:
    """Restore weights into `models` and the RNG; return the saved trainer state (with 'step').

    Reads only JSON and safetensors; anything else (an old pickled trainer.pt, a damaged or
    planted file, weights of another model) is a UserError naming the directory."""
    path = Path(path)
    if not (path / STATE).is_file():
        raise UserError(f"checkpoint format from an older reasoner; delete {path} or set resume=false")
    payload = read_checkpoint(path)
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT and isinstance(payload.get("step"), int)
            and isinstance(payload.get("state"), dict) and isinstance(payload.get("rng"), dict)
            and isinstance(payload.get("weights"), dict) and set(payload["weights"]) == set(models)):
        raise UserError(f"checkpoint {path}: not a checkpoint of this run (models {', '.join(sorted(models))}); "
                        "delete it or set resume=false")
    for name, model in models.items():
        _restore(path, name, model, payload["weights"][name])
    try:
        set_rng_state(payload["rng"])
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError) as exc:
        raise UserError(f"checkpoint {path}: bad RNG state ({type(exc).__name__}); delete it or set resume=false") from None
    return {**payload["state"], "step": payload["step"]}


def saved_settings(path: Path) -> dict | None:
    """The settings step-N/ was written under (None: a checkpoint that did not record them)."""
    try:
        settings = json.loads((Path(path) / STATE).read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError, AttributeError):
        return None  # load_checkpoint names what is wrong with it
    return settings if isinstance(settings, dict) else None


def read_checkpoint(path: Path) -> Any:
    """The decoded contents of step-N/ ({format, step, weights, state, rng}), from JSON and
    safetensors only; UserError if either file is missing, damaged or not what it claims."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path / TENSORS))
        return decode(json.loads((path / STATE).read_text(encoding="utf-8")), tensors)
    except Exception as exc:  # json, safetensors (its own error class), a dangling tensor name, ...
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise UserError(f"checkpoint {path}: unreadable ({type(exc).__name__}: {reason}); "
                        "delete it or set resume=false") from None


def _restore(path: Path, name: str, model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not isinstance(saved, dict) or not all(isinstance(t, torch.Tensor) for t in saved.values()):
        raise UserError(f"checkpoint {path}: {name} weights are not tensors; delete it or set resume=false")
    if set(saved) != set(params) or any(saved[n].shape != params[n].shape for n in params):
        diff = sorted(set(saved) ^ set(params)) or [n for n in params if saved[n].shape != params[n].shape]
        raise UserError(f"checkpoint {path}: {name} weights do not match the model ({diff[0]}); "
                        "delete it or set resume=false")
    with torch.no_grad():
        for pname, tensor in saved.items():
            params[pname].copy_(tensor.to(params[pname].device, params[pname].dtype))
