"""RankZeroEngine on 2 CPU processes: rank 0's engine makes one call for both ranks' prompts,
each rank gets exactly the completions its own prompts get (per-prompt seeds), a failure on
rank 0 is raised on every rank, and only rank 0's engine is fed weights. The engine here is
the HF backend (the vLLM lane runs the real engine: test_vllm_sync.py)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tests.dist.harness import free_port

PROMPTS = [["1+2=", "7", "(4+4)*2="], ["12*34+5=", "100-99*3+8=", "3*3="]]


class _Recording:
    """An engine that records what it was asked (tests only)."""

    def __init__(self, inner):
        self.inner, self.calls, self.updates = inner, [], 0

    def generate(self, prompts, params):
        self.calls.append(list(prompts))
        return self.inner.generate(prompts, params)

    def update_weights(self, model):
        self.updates += 1


def _params(rank: int):
    from reasoner.generation import SamplingParams

    return SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=5,
                          prompt_seeds=[100 + 3 * rank + i for i in range(3)])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from dataclasses import replace

    from reasoner.dist import init_from_env
    from reasoner.dist.shared_engine import RankZeroEngine
    from reasoner.generation import HFGenerator
    from tests.generation.tiny import char_tokenizer, tiny_llama

    init_from_env("gloo")
    tok = char_tokenizer()
    model = tiny_llama(tok, seed=0)
    engine = RankZeroEngine.build(lambda: _Recording(HFGenerator(model, tok)))
    got = engine.generate(PROMPTS[rank], _params(rank))
    alone = HFGenerator(model, tok).generate(PROMPTS[rank], _params(rank))
    try:
        engine.generate(["1+1=", "2"], replace(_params(rank), prompt_seeds=[1]))  # one seed short per rank
        failed = None
    except ValueError as err:
        failed = str(err)
    engine.update_weights(model)
    record = {"got": [[c.token_ids for c in row] for row in got], "alone": [[c.token_ids for c in row] for row in alone],
              "has_engine": engine.engine is not None, "failed": failed,
              "calls": engine.engine.calls if engine.engine else None,
              "updates": engine.engine.updates if engine.engine else None}
    torch.save(record, Path(out) / f"rank{rank}.pt")


def test_one_engine_on_rank_0_serves_both_ranks(tmp_path):
    import torch.multiprocessing as mp

    mp.start_processes(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert r0["has_engine"] and not r1["has_engine"]
    assert r0["calls"][0] == PROMPTS[0] + PROMPTS[1]  # one call, rank order
    assert r0["got"] == r0["alone"] and r1["got"] == r1["alone"]
    assert r0["failed"] and r0["failed"] == r1["failed"] and "generation on rank 0" in r1["failed"]
    assert r0["updates"] == 1
