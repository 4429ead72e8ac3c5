"""Who this process is in a scale-out run, and the few collectives the loop needs.

torchrun (`reasoner launch`) sets RANK / WORLD_SIZE / LOCAL_RANK; without them the process is
rank 0 of 1 and every collective here is the identity, so single-process code pays nothing.
The process group is started once per process (`init_from_env`), with gloo on CPU and nccl when
CUDA is there (dist.backend=auto).
"""

from __future__ import annotations

import atexit
import os

from reasoner.errors import UserError

BACKENDS = ("auto", "gloo", "nccl")


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    return _dist().get_rank() if initialized() else 0


def world_size() -> int:
    return _dist().get_world_size() if initialized() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes run files (metrics, checkpoints, final/, summary)."""
    return rank() == 0


def initialized() -> bool:
    d = _dist()
    return d.is_available() and d.is_initialized()


def _dist():
    import torch.distributed as d

    return d


def pick_backend(backend: str) -> str:
    """gloo on CPU, nccl on GPU (auto), or what the user named."""
    if backend not in BACKENDS:
        raise UserError(f"config: dist.backend must be one of {', '.join(BACKENDS)} (got '{backend}')")
    if backend != "auto":
        return backend
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def init_from_env(backend: str = "auto") -> bool:
    """Join the process group torchrun described (once); False when this is a single process."""
    if env_world_size() <= 1 or initialized():
        return initialized()
    import datetime

    import torch

    chosen = pick_backend(backend)
    if chosen == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    _dist().init_process_group(chosen, timeout=datetime.timedelta(minutes=30))
    atexit.register(_leave)
    return True


def _leave() -> None:
    """Destroy the process group before the interpreter exits: left to teardown, gloo's worker
    threads can be destroyed while still joinable, which aborts the process (SIGABRT) after a
    run that succeeded."""
    if initialized():
        _dist().destroy_process_group()


def init_alone(backend: str = "auto") -> None:
    """A process group of this one process (DeepSpeed needs one even on a single process);
    an in-memory store, so nothing is listened on."""
    if initialized():
        return
    chosen = pick_backend(backend)
    _dist().init_process_group(chosen, store=_dist().HashStore(), rank=0, world_size=1)
    atexit.register(_leave)


def barrier() -> None:
    if initialized():
        _dist().barrier()


def broadcast_object(obj, src: int = 0):
    """`obj` as rank `src` has it, on every rank (pickled; small things only)."""
    if not initialized():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not initialized():
        return [obj]
    out = [None] * world_size()
    _dist().all_gather_object(out, obj)
    return out


def scatter_objects(parts: list | None):
    """Rank r's item of rank 0's `parts` (one per rank; None on the other ranks), on rank r."""
    if not initialized():
        return parts[0]
    box = [None]
    _dist().scatter_object_list(box, parts if is_main() else None, src=0)
    return box[0]


def all_sum(value: float) -> float:
    """The sum of a number over ranks."""
    return float(sum(gather_objects(float(value)))) if initialized() else float(value)


def mean_metrics(metrics: dict) -> dict:
    """Each numeric metric averaged over the ranks that report it (others as rank 0 has them).

    Recipes report per-rank values scaled so that this mean is the global value (see
    `shard` and `loss_scale`)."""
    if not initialized():
        return metrics
    every = gather_objects(metrics)
    out = {}
    for key, value in every[0].items():
        values = [m[key] for m in every if key in m]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        out[key] = sum(values) / len(values) if numeric else value
        if numeric and all(isinstance(v, int) for v in values) and out[key] == int(out[key]):
            out[key] = int(out[key])
    for m in every[1:]:
        for key, value in m.items():
            out.setdefault(key, value)
    return out


def shard(items: list, never_empty: bool = False) -> list:
    """This rank's share of a global batch: every world_size-th item from its rank on
    (never_empty: a batch shorter than the world is cycled first, so every rank has an item)."""
    items = list(items)
    if not initialized():
        return items
    if never_empty and items and len(items) < world_size():
        items = [items[i % len(items)] for i in range(world_size())]
    return items[rank()::world_size()]
