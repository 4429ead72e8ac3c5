"""Every RL algorithm `reasoner train-rl algo=NAME` can run, by name: one explicit dict.

An entry is a class with `name`, `kind` ("online" or "offline"), its config dataclass `Config`
(extending config.AlgoConfig; conf/algo/NAME.yaml holds its defaults) and the methods of
algos/online/base.OnlineAlgorithm or algos/offline/base.OfflineAlgorithm. Adding one: a module,
a yaml, its tests and a line below; or, from outside the package, `register(MyAlgorithm)`.
"""

from __future__ import annotations

import dataclasses

from reasoner.algos.offline.dpo import DPO
from reasoner.algos.offline.oreo import OREO
from reasoner.algos.offline.rft import RFT
from reasoner.algos.online.grpo import GRPO
from reasoner.algos.online.ppo import PPO
from reasoner.algos.online.prime import PRIME
from reasoner.algos.online.rlep import RLEP
from reasoner.algos.online.rloo import RLOO
from reasoner.config import AlgoConfig
from reasoner.errors import UserError

ALGORITHMS: dict[str, type] = {
    "grpo": GRPO,
    "rloo": RLOO,
    "ppo": PPO,
    "prime": PRIME,
    "rlep": RLEP,
    "oreo": OREO,
    "rft": RFT,
    "dpo": DPO,
}


def register(algorithm: type) -> type:
    """Add an algorithm under algorithm.name (usable as a class decorator); returns it."""
    name, config = getattr(algorithm, "name", None), getattr(algorithm, "Config", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{algorithm!r} has no name")
    if getattr(algorithm, "kind", None) not in ("online", "offline"):
        raise ValueError(f"algorithm '{name}': kind must be 'online' or 'offline'")
    if not (dataclasses.is_dataclass(config) and issubclass(config, AlgoConfig) and config().name == name):
        raise ValueError(f"algorithm '{name}': Config must be a config.AlgoConfig dataclass whose name defaults to '{name}'")
    ALGORITHMS[name] = algorithm
    return algorithm


def get_algorithm(name: str) -> type:
    """The registered algorithm `name`; a UserError with a did-you-mean otherwise."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    from reasoner.config import closest

    guess = closest(name, ALGORITHMS)
    hint = f"did you mean '{guess}'?" if guess else f"choose from {', '.join(ALGORITHMS)}"
    raise UserError(f"config: unknown algo.name '{name}' ({hint})")


def algorithms_with_option(key: str) -> list[str]:
    """The registered algorithms whose config has the field `key`."""
    return [n for n, a in ALGORITHMS.items() if key in {f.name for f in dataclasses.fields(a.Config)}]
