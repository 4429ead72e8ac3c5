"""Offline RL algorithms, one module each, registered by name in reasoner/algos/registry.py.

base.py  what the offline recipe (reasoner/offline/recipe.py) asks of an algorithm
oreo.py  OREO with its value model       rft.py  RFT       dpo.py  DPO
"""
