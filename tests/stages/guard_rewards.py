"""Reward functions the guard tests load by dotted path: all-zero rewards (zero advantages, zero
gradients), and zero on the first call then varied (a finite first step, then real gradients)."""

from tests.rl.reward_fns import char_checksum

CALLS = {"n": 0}


def zero(prompts, completions, **cols):
    return [0.0] * len(completions)


def zero_then_varied(prompts, completions, **cols):
    CALLS["n"] += 1
    return zero(prompts, completions) if CALLS["n"] == 1 else char_checksum(prompts, completions)
