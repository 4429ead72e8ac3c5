"""`reasoner train-rl`: one command, online or offline RL chosen by `algo=`."""

from __future__ import annotations

from reasoner.errors import UserError

ONLINE = ("grpo", "rloo", "ppo", "prime", "rlep")
OFFLINE = ("oreo", "rft", "dpo")


def run(cfg):
    name = cfg.algo.name
    if name in ONLINE:
        from reasoner.stages import train_rl_online as stage
    elif name in OFFLINE:
        from reasoner.stages import train_rl_offline as stage
    else:
        raise UserError(f"config: algo.name must be one of {', '.join(ONLINE + OFFLINE)}, got '{name}'")
    return stage.run(cfg)
