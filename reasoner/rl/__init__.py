"""Online RL glue: rollout batches and per-token log-probs, rewards, rollouts, the RLEP replay
pool, the update loop, and the online recipe (recipe.py) the one training loop runs. Pure tensor
maths lives in reasoner.algos, the algorithms in reasoner/algos/online."""
