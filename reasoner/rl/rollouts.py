"""One step's rollouts: which problems (a pure function of the step, so resuming is exact),
n fresh samples per prompt from the Generator, optional replayed pool answers (RLEP)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from reasoner.utils.train import epoch_order


@dataclass
class Sample:
    problem: object  # data.Problem
    prompt: str  # as sent (template applied)
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    truncated: bool  # hit max_new_tokens
    fresh: bool = True  # False: replayed from the pool


@dataclass
class Rollouts:
    samples: list[Sample] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # group sizes, groups contiguous

    @property
    def fresh(self) -> list[Sample]:
        return [s for s in self.samples if s.fresh]


def step_problem_indices(num_problems: int, per_step: int, seed: int, step: int, round: int = 0) -> list[int]:
    """Indices of the problems of `step` (0-based): consecutive slices of per-epoch shuffles.

    Round r > 0 (dynamic sampling's extra prompts) draws per_step problems at random from a
    stream seeded by (seed, step, round): still a pure function, so resuming stays exact, and
    the epoch walk of round 0 is the same with dynamic sampling on or off.
    """
    if round:
        gen = torch.Generator().manual_seed(step_seed(seed, 0, step, round))
        return torch.randint(num_problems, (per_step,), generator=gen).tolist()
    out, cache = [], {}
    for i in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(i, num_problems)
        if epoch not in cache:
            cache[epoch] = epoch_order(num_problems, seed, epoch)
        out.append(cache[epoch][pos])
    return out


def step_seed(seed: int, gen_seed: int, step: int, round: int = 0) -> int:
    """The sampling seed of one step (and generation round): differs across steps, rounds, seeds
    and generation seeds."""
    base = ((seed * 1_000_003 + gen_seed) * 100_003 + step) % (2**63 - 1)
    return (base * 1_000_033 + round) % (2**63 - 1) if round else base


def informative_groups(outcome: list[float], sizes: list[int]) -> list[int]:
    """Groups whose rewards are not all equal (DAPO's dynamic sampling keeps these: a group of
    equal rewards has zero group-relative advantage and adds no gradient)."""
    keep, start = [], 0
    for g, size in enumerate(sizes):
        vals = outcome[start:start + size]
        if max(vals) - min(vals) > 1e-9:
            keep.append(g)
        start += size
    return keep


def concat_rewards(parts: list):
    """One Rewards over several rounds' samples, in order."""
    from reasoner.rl.rewards import Rewards

    return Rewards.concat(parts)


def select_groups(rounds: list[tuple[Rollouts, object]], kept: list[tuple[int, int]]) -> tuple[Rollouts, object]:
    """The (round, group) groups of several rounds' (rollouts, rewards), as one batch."""
    from reasoner.rl.rewards import Rewards

    roll, parts = Rollouts(), []
    for r, g in kept:
        source, rewards = rounds[r]
        start = sum(source.sizes[:g])
        span = range(start, start + source.sizes[g])
        roll.samples += [source.samples[i] for i in span]
        roll.sizes.append(source.sizes[g])
        parts.append(rewards.take(span))
    return roll, (concat_rewards(parts) if parts else Rewards([], [], [], None))


def collect(generator, tokenizer, problems, prompts: list[str], params, pool=None, replay: int = 0,
            rng: torch.Generator | None = None) -> Rollouts:
    """Generate params.n completions per prompt; with a pool, append up to `replay` pooled answers
    to each group (tokenised as the response + EOS, as SFT trains them)."""
    from reasoner.prompts import encode_prompt

    outputs = generator.generate(prompts, params)
    roll = Rollouts()
    eos = tokenizer.eos_token_id
    for problem, prompt, outs in zip(problems, prompts, outputs):
        pids = encode_prompt(tokenizer, prompt)
        for c in outs:
            roll.samples.append(Sample(problem, prompt, pids, list(c.token_ids), c.text, c.finish_reason == "length"))
        count = len(outs)
        if pool is not None and replay > 0:
            for resp in pool.sample(problem.id, replay, rng):
                ids = tokenizer(resp, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
                roll.samples.append(Sample(problem, prompt, pids, ids, resp, False, fresh=False))
                count += 1
        roll.sizes.append(count)
    return roll
