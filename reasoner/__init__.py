"""reasoner: collect, label, train (SFT, PRM, offline and online RL) and search-decode reasoning models."""

__version__ = "0.1.0"
