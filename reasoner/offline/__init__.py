"""Offline RL pieces for `reasoner train-rl algo=oreo|rft|dpo` (ALGORITHMS.md §6).

data.py        trajectories -> token ids with per-token step indices; DPO pairs; batching
objectives.py  model forwards -> OREO value/policy losses, DPO and RFT losses (tensor maths
               lives in reasoner.algos; this module only gathers the right positions)
recipe.py      one round as a recipe for the one loop; the algorithms are reasoner/algos/offline
"""
