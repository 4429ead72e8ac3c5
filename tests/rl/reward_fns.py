"""Custom reward functions the tests load by dotted path (TRL's signature)."""

CALLS = {"n": 0}


def length_reward(prompts, completions, **cols):
    """Shorter is better; checks the columns TRL-style functions get."""
    assert len(cols["answer"]) == len(completions) == len(cols["completion_ids"])
    return [1.0 / (1 + len(c)) for c in completions]


def exploding(prompts, completions, **cols):
    """Finite as a Python float, inf once in float32: the loss goes NaN on the 3rd call."""
    CALLS["n"] += 1
    big = 1e39 if CALLS["n"] >= 3 else 1.0
    return [big * (i % 2) for i in range(len(completions))]


def wrong_length(prompts, completions, **cols):
    return [0.0]


def count_of_sevens(prompts, completions, **cols):
    """Dense and learnable from scratch: the share of completion characters that are '7'."""
    return [c.count("7") / max(1, len(c)) for c in completions]


def char_checksum(prompts, completions, **cols):
    """Deterministic, varied across different completions: a group of distinct samples almost
    never gets equal rewards (what dynamic sampling keeps)."""
    return [(sum(map(ord, c)) % 7) / 7 for c in completions]


def flat_on_even_answers(prompts, completions, **cols):
    """The same reward for every sample of a problem whose gold answer is even (an uninformative
    group for dynamic sampling to drop), `char_checksum` otherwise."""
    varied = char_checksum(prompts, completions)
    return [0.5 if int(a) % 2 == 0 else v for a, v in zip(cols["answer"], varied)]


def by_difficulty(prompts, completions, difficulty, **cols):
    """A dataset's own column (a jsonl record's extra field) as the reward."""
    assert len(difficulty) == len(completions) == len(cols["answer"])
    return [float(d) for d in difficulty]
