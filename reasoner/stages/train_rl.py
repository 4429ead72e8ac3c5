"""`reasoner train-rl`: one command, online or offline RL, the algorithm chosen by `algo=`."""

from __future__ import annotations


def run(cfg) -> dict:
    from reasoner.algos.registry import get_algorithm

    if get_algorithm(cfg.algo.name).kind == "online":
        from reasoner.stages import train_rl_online as stage
    else:
        from reasoner.stages import train_rl_offline as stage
    return stage.run(cfg)
