"""Shared pieces of the RL stages: rollout batches and per-token log-probs, rewards, the RLEP
replay pool, metric sinks. Pure tensor maths lives in reasoner.algos; these glue it to models."""
