"""Online RL algorithms, one module each, registered by name in reasoner/algos/registry.py.

base.py   what the online recipe (reasoner/rl/recipe.py) asks of an algorithm; shared configs
grpo.py   GRPO (dapo / dr_grpo are conf/algo yamls of it)    rloo.py  RLOO
ppo.py    PPO with its critic                                 prime.py PRIME with its implicit PRM
rlep.py   RLEP: GRPO over fresh + replayed verified answers
"""
