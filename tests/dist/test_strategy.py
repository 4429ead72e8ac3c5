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


def _zero3_worker(rank: int, world: int, port: int, out: str, config: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from reasoner.dist import full_weights, init_from_env
    from reasoner.dist.zero import DeepSpeedStrategy
    from reasoner.schemas import DistConfig
    from reasoner.utils.guard import StepGuard, guarded_step

    init_from_env("gloo")
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with torch.no_grad():  # rank 1 starts elsewhere: wrap must give every rank rank 0's weights
        for p in model.parameters():
            p.copy_(torch.arange(p.numel(), dtype=p.dtype).view_as(p) / 10 + rank)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.0)
    s = DeepSpeedStrategy(DistConfig(strategy="deepspeed", zero_stage=3, deepspeed_config=config)).wrap(model, opt)
    guard = StepGuard(opt, "policy", max_grad_norm=1.0, max_update_ratio=1.0)
    record = {"outside": [p.numel() for p in model.parameters()],
              "partition": [p.ds_tensor.numel() for p in model.parameters()]}
    with full_weights([model]):
        record["before"] = [p.detach().clone() for p in model.parameters()]
    for micro in range(2):  # two micro-batches per rank accumulate into one step
        x = torch.full((1, 3), float(2 * rank + micro + 1))
        s.backward(model(x).pow(2).sum())
    record["norm"] = guarded_step(guard)[0]
    with full_weights([model]):
        record["after"] = [p.detach().clone() for p in model.parameters()]
    torch.save(record, Path(out) / f"rank{rank}.pt")


def test_zero3_partitions_the_weights_gathers_them_whole_and_steps_as_one_process(tmp_path):
    """ZeRO-3 on 2 ranks: outside a forward each weight is a half-size partition; full_weights
    gives rank 0's whole weights on every rank; two micro-batches per rank make one process's
    step on the four inputs (same clipped norm, same AdamW update)."""
    import json

    import pytest
    import torch.multiprocessing as mp

    pytest.importorskip("deepspeed")
    from tests.dist.harness import ZERO3_CONFIG

    config = tmp_path / "zero3.json"
    config.write_text(json.dumps(ZERO3_CONFIG))
    mp.start_processes(_zero3_worker, args=(2, free_port(), str(tmp_path), str(config)), nprocs=2, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert r0["outside"] == [0, 0, 0, 0]
    assert r0["partition"] == [6, 2, 4, 1]  # ceil(numel / 2): weights 4x3, 4, 2x4, 2
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.arange(p.numel(), dtype=p.dtype).view_as(p) / 10)
    for got in (r0, r1):
        for p, q in zip(got["before"], ref.parameters()):
            torch.testing.assert_close(p, q.detach())
    opt = torch.optim.AdamW(ref.parameters(), lr=0.1, weight_decay=0.0)
    sum(ref(torch.full((1, 3), float(v))).pow(2).sum() for v in (1, 2, 3, 4)).div(2).backward()  # mean over 2 ranks
    norm = float(torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 1.0))
    opt.step()
    assert r0["norm"] == pytest.approx(norm, rel=1e-5) and r1["norm"] == pytest.approx(norm, rel=1e-5)
    for got in (r0, r1):
        for p, q in zip(got["after"], ref.parameters()):
            torch.testing.assert_close(p, q.detach(), rtol=1e-5, atol=1e-6)
