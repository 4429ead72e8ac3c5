"""The strategies on their own: clip_and_step is clip + step + zero_grad; DDP averages the ranks'
gradients and leaves a parameter no rank gave a gradient without one (AdamW then skips it, as
on one process)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from reasoner.dist import DDPStrategy, SingleStrategy, strategy_of
from tests.dist.harness import free_port


def _model():
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"used": torch.nn.Linear(3, 2), "unused": torch.nn.Linear(3, 2)})


def test_clip_and_step_is_the_clipped_step_and_clears_the_gradients():
    a, b = _model(), _model()
    oa, ob = torch.optim.AdamW(a.parameters(), lr=0.1), torch.optim.AdamW(b.parameters(), lr=0.1)
    s = SingleStrategy().wrap(a, oa)
    assert strategy_of(oa) is s and s.unwrap(a) is a
    x = torch.randn(4, 3)
    s.backward(a["used"](x).pow(2).sum() * 10)
    b["used"](x).pow(2).sum().mul(10).backward()
    expected = float(torch.nn.utils.clip_grad_norm_(list(b.parameters()), 0.5))
    ob.step()
    assert s.clip_and_step(0.5) == expected
    assert all(p.grad is None for p in a.parameters())
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_ddp_on_one_process_is_the_single_step():
    a = _model()
    b = copy.deepcopy(a)
    sa = DDPStrategy().wrap(a, torch.optim.AdamW(a.parameters(), lr=0.1))
    sb = SingleStrategy().wrap(b, torch.optim.AdamW(b.parameters(), lr=0.1))
    x = torch.randn(4, 3)
    for s, m in ((sa, a), (sb, b)):
        s.backward(m["used"](x).sum())
    assert sa.clip_and_step(1.0) == sb.clip_and_step(1.0)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from reasoner.dist import init_from_env

    init_from_env("gloo")
    model = _model()
    with torch.no_grad():  # different weights on rank 1: wrap must broadcast rank 0's
        for p in model.parameters():
            p.add_(rank)
    s = DDPStrategy().wrap(model, torch.optim.SGD(model.parameters(), lr=1.0))
    s.backward(model["used"](torch.full((1, 3), float(rank + 1))).sum())  # grad of rank r: (r + 1) per input
    s.reduce_gradients()
    torch.save({"weight": model["used"].weight.detach().clone(), "grad": model["used"].weight.grad.clone(),
                "unused": [p.grad for p in model["unused"].parameters()]}, Path(out) / f"rank{rank}.pt")


def test_ddp_broadcasts_rank_0_weights_and_averages_the_gradients(tmp_path):
    import torch.multiprocessing as mp

    mp.start_processes(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    torch.testing.assert_close(r0["weight"], _model()["used"].weight.detach())
    torch.testing.assert_close(r1["weight"], r0["weight"])
    torch.testing.assert_close(r0["grad"], torch.full((2, 3), 1.5))  # mean of 1 and 2
    torch.testing.assert_close(r1["grad"], r0["grad"])
    assert r0["unused"] == [None, None] and r1["unused"] == [None, None]
