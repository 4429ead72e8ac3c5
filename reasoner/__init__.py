"""reasoner: collect, label, train (SFT, PRM, offline and online RL) and search-decode reasoning models.

    import reasoner
    summary = reasoner.run("train-rl", ["algo=grpo", "steps=50"])   # any CLI command, same config
    from reasoner.train import Recipe, RecipeBase, LoopOptions, train  # the one training loop
"""

__version__ = "0.1.0"

_TRAIN_NAMES = ("LoopOptions", "Recipe", "RecipeBase", "Step")


def run(command: str, overrides=None) -> dict:
    """Run a CLI command (`"train-rl"`, `"decode"`, ...) with key=value overrides; its summary dict.
    Bad input raises reasoner.errors.UserError with the CLI's one-line message (reasoner.api)."""
    from reasoner.api import run as run_command

    return run_command(command, overrides)


def __getattr__(name: str):
    if name in ("api", "train"):  # `reasoner.api.load_config`, `reasoner.train.train` after a plain `import reasoner`
        import importlib

        return importlib.import_module(f"reasoner.{name}")
    if name in _TRAIN_NAMES:  # the loop and its protocol, without importing torch for `import reasoner`
        import reasoner.train

        return getattr(reasoner.train, name)
    raise AttributeError(f"module 'reasoner' has no attribute {name!r}")
