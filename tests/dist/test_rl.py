"""Online RL on 2 CPU processes (gloo): prompt groups stay whole on one rank, and the GRPO update
of the ranks' groups is one process's update of all of them (DDP and ZeRO-2); train-rl algo=grpo
runs end to end with rank 0 alone writing.

End-to-end GRPO losses are not compared with one process: sampling draws its random numbers
per generation batch, so a rank's share of the prompts samples other completions than the same
prompts do inside the whole batch. The update on fixed rollouts is compared instead (losses
within 1e-5 relative, weights within 1e-5 absolute).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from reasoner import api
from tests.conftest import TINY
from tests.dist.harness import free_port, metrics, run_ranks

pytestmark = pytest.mark.usefixtures("one_thread")

GROUPS, G = 4, 2
REWARDS = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]  # group 2 all-equal: zero advantages


def _grpo_update(rows: list[int], strategy: str | None) -> tuple[dict, dict]:
    """One GRPO policy update of `rows` (whole groups); the metrics and the new weights."""
    from reasoner import config, dist
    from reasoner.algos.advantages import grpo_advantages
    from reasoner.models import load_policy
    from reasoner.rl.batch import build_batch
    from reasoner.rl.update import UpdatePlan, policy_update
    from reasoner.schemas import DistConfig
    from reasoner.utils.train import build_optimizer, build_scheduler

    torch.manual_seed(0)
    model, tok = load_policy(config.load("train_rl", TINY).model)
    model.train()
    prompts = [tok(f"Compute: {g} + 2")["input_ids"] for g in range(GROUPS) for _ in range(G)]
    texts = ["Answer: 3", "Answer: 4", "12", "1 + 2 = 3", "7", "Answer: 5 5", "9 9 9", "Answer: 6"]
    comps = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    adv = grpo_advantages(torch.tensor(REWARDS), G)
    batch = build_batch([prompts[i] for i in rows], [comps[i] for i in rows], tok.pad_token_id)
    if strategy is not None:
        dist.activate(DistConfig(strategy=strategy))
    opt = build_optimizer(model.parameters(), 1e-2, 0.0, [0.9, 0.95])
    dist.wrap(None, opt)
    sched = build_scheduler(opt, "constant", 0, 10)
    out = policy_update(model, opt, sched, batch, adv[rows], batch.response_mask, UpdatePlan(micro_batch=3),
                        torch.Generator())
    return dist.mean_metrics(out), {n: p.detach().clone() for n, p in model.named_parameters()}


def _update_worker(rank: int, world: int, port: int, strategy: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    groups = list(range(GROUPS))[rank::world]  # shard prompts, not samples
    metrics_, weights = _grpo_update([g * G + k for g in groups for k in range(G)], strategy)
    if rank == 0:
        torch.save({"metrics": metrics_, "weights": weights}, Path(out) / "rank0.pt")


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed"])
def test_grpo_update_on_two_ranks_matches_one(tmp_path, strategy):
    import torch.multiprocessing as mp

    if strategy == "deepspeed":
        pytest.importorskip("deepspeed")
    single_metrics, single_weights = _grpo_update(list(range(GROUPS * G)), None)
    mp.start_processes(_update_worker, args=(2, free_port(), strategy, str(tmp_path)), nprocs=2, start_method="spawn")
    got = torch.load(tmp_path / "rank0.pt")
    assert got["metrics"]["loss"] == pytest.approx(single_metrics["loss"], rel=1e-5, abs=1e-8)
    assert got["metrics"]["grad_norm"] == pytest.approx(single_metrics["grad_norm"], rel=1e-5)
    for name, w in single_weights.items():
        assert float((got["weights"][name] - w).abs().max()) < 1e-5, name


RL = [*TINY, "model.device=cpu", "data.num_problems=40", "prompts_per_step=2", "generation.n=4",
      "generation.max_new_tokens=8", "generation.batch_size=16", "batch_size=4", "eval_every=0", "steps=2",
      "save_every=1", "reward.kind=custom", "reward.function=tests.rl.reward_fns:char_checksum"]


def test_train_rl_grpo_runs_on_two_processes(tmp_path):
    run_dir = tmp_path / "run"
    records = run_ranks("train-rl", [*RL, "algo=grpo", "dist.strategy=ddp"], run_dir, tmp_path / "ranks")
    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["rollouts"] == 8 * r["step"] for r in rows)  # both ranks' samples counted: 2 prompts x 4
    assert records[0]["summary"]["rollouts"] == 16
    assert records[1]["written"] == [] and records[0]["written"]
    pool = [json.loads(line) for line in (run_dir / "pool.jsonl").read_text().splitlines()] if (
        run_dir / "pool.jsonl").exists() else []
    assert len({p["id"] for p in pool}) == len(pool)  # each correct sample once, from whichever rank drew it


@pytest.mark.parametrize("extra,message", [
    (["prompts_per_step=3"], "prompts_per_step=3 must be a multiple of the 2 processes"),
    (["algo.minibatch_size=5"], "algo.minibatch_size=5 must be a multiple of the 2 processes"),
    (["algo=dapo"], "dynamic sampling"),
    (["algo=prime"], "algo=prime runs on one process only"),
    (["algo=rloo", "algo.normalize_advantages=true"], "normalize_advantages=true runs on one process only"),
])
def test_online_rl_refuses_what_the_processes_cannot_split(monkeypatch, extra, message):
    from reasoner.algos.registry import get_algorithm
    from reasoner.errors import UserError
    from reasoner.rl.recipe import validate

    cfg = api.load_config("train-rl", [*RL, *extra])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match=message):
        validate(cfg, get_algorithm(cfg.algo.name))


def _whiten_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from reasoner import dist
    from reasoner.algos.masked import masked_whiten

    dist.init_from_env("gloo")
    x, mask = _advantages()
    rows = list(range(x.size(0)))[rank::world]
    torch.save(masked_whiten(x[rows], mask[rows], mean=dist.masked_global_mean), Path(out) / f"rank{rank}.pt")


def _advantages():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(6, 5, generator=g) > 0.3).float()
    return torch.randn(6, 5, generator=g) * 3 + 1, mask


def test_ppo_whitening_is_over_every_ranks_rollouts(tmp_path):
    """PPO whitens its advantages with the mean and std of both ranks' tokens, as one process does."""
    import torch.multiprocessing as mp

    from reasoner.algos.masked import masked_whiten
    from reasoner.dist import masked_global_mean

    x, mask = _advantages()
    single = masked_whiten(x, mask, mean=masked_global_mean)
    torch.testing.assert_close(single, masked_whiten(x, mask))  # one process: the plain masked mean
    mp.start_processes(_whiten_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    for rank in range(2):
        torch.testing.assert_close(torch.load(tmp_path / f"rank{rank}.pt"), single[rank::2], atol=1e-6, rtol=1e-5)
