"""The one training core: a `Recipe` says what a step does, `train` runs any recipe.

    from reasoner.train import Recipe, RecipeBase, Step, LoopOptions, train
    summary = train(my_recipe, "runs/mine", LoopOptions(save_every=50, eval_every=10))

recipe.py  the protocol, RecipeBase defaults, Optim (AdamW + schedule + guard), EpochBatches
loop.py    the loop: progress, tokens/s, guard stop, checkpoints + exact resume, sinks, eval, final save
sinks.py   metrics.jsonl (+ TensorBoard / W&B), progress.py the bar / periodic line
sft.py     supervised fine-tuning as a recipe (train-sft; RFT reuses its loss)
"""

from reasoner.train.loop import LoopOptions, train
from reasoner.train.recipe import EpochBatches, Optim, Recipe, RecipeBase, Step, step_together
from reasoner.train.sinks import MetricSink, check_sinks

__all__ = ["EpochBatches", "LoopOptions", "MetricSink", "Optim", "Recipe", "RecipeBase", "Step", "check_sinks",
           "step_together", "train"]
