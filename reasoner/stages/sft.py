"""`reasoner train-sft`: supervised fine-tuning with the loss on response tokens only.

Trains on the gold solutions of a task, or on collected trajectories (rejection-sampling FT when
only correct ones are kept). The recipe is `reasoner.train.sft.SFTRecipe`; the one loop
(`reasoner.train.loop`) runs it: checkpoints resume exactly, the final model is saved in HF format.
"""

from __future__ import annotations


def run(cfg) -> dict:
    from reasoner.train import LoopOptions, check_sinks, train
    from reasoner.train.sft import SFTRecipe
    from reasoner.utils.run import prepare_run_dir

    check_sinks(cfg.tensorboard, cfg.wandb)
    recipe = SFTRecipe(cfg)  # data and model: a bad input stops here, before anything is written
    return train(recipe, prepare_run_dir(cfg, "train-sft"), LoopOptions.from_config(cfg))
