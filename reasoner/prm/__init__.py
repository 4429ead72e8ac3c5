"""Process reward models: tokenisation (where labels go and scores are read), losses, the PRM
directory format, evaluation metrics and training examples. `reasoner.scoring` turns a trained
PRM directory into a `StepScorer`; `reasoner.stages.train_prm` / `eval_prm` drive these pieces.
"""
