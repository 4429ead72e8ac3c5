"""Step labels and trajectory selection for `reasoner collect`.

- rollout.py: graded rollouts from step prefixes (the RolloutFn the labelers call)
- shepherd.py: Math-Shepherd Monte-Carlo labels (soft, hard = soft > 0)
- omegaprm.py: OmegaPRM binary search with the Q+U pool and a rollout budget
- selection.py: none | balanced (OREO) | correct (rejection sampling)
- stats.py: label statistics and agreement with ground-truth step labels
"""

LABELERS = ("none", "truth", "shepherd", "omegaprm")
