"""Collected trajectories as token sequences with step indices, ready for OREO / RFT / DPO.

A response is tokenised piece by piece exactly as the value scorer (reasoner.scoring) reads it:
step 0, then separator + step 1, separator + step 2, ... then EOS when the sample ended by
itself. So "the state before step k" is the prefix ending at the last token of step k-1's text,
which is the position the scorer reads as "V after step k-1". Responses whose steps do not
rejoin to the response text are tokenised whole and count as one step.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch

from reasoner.errors import DataError, UserError


@dataclass
class Sequence:
    """One trajectory as ids: prompt tokens, response tokens, each response token's step index."""

    problem_id: str
    prompt_ids: list[int]
    response_ids: list[int]
    step_of_token: list[int]
    reward: float

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.response_ids


def read_offline_trajectories(path: str) -> list:
    """Trajectory records with rewards in {0, 1}; a bad record stops with file:line:field."""
    from pathlib import Path

    from reasoner.data import Trajectory, iter_rows

    if not Path(path).exists():
        raise UserError(f"train_file '{path}': no such file (give a `reasoner collect` trajectories.jsonl)")
    out = []
    for src, line, row in iter_rows(path):
        t = Trajectory.from_dict(row, src, line)
        if t.reward not in (0.0, 1.0):
            raise DataError(src, line, "reward", f"offline RL needs outcome rewards in {{0, 1}}, got {t.reward}")
        if not t.response:
            raise DataError(src, line, "response", "empty response")
        out.append(t)
    if not out:
        raise UserError(f"train_file '{path}': no trajectories")
    return out


def encode_trajectory(tokenizer, traj, separator: str, max_length: int) -> Sequence:
    """Prompt ids + response ids (steps piece by piece, EOS unless cut by length), truncated on the right."""
    from reasoner.prompts import encode_prompt

    prompt_ids = encode_prompt(tokenizer, traj.prompt)
    pieces = [s if i == 0 else separator + s for i, s in enumerate(traj.steps)]
    if not pieces or "".join(pieces) != traj.response:
        pieces = [traj.response]
    response_ids, steps = [], []
    for k, piece in enumerate(pieces):
        ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
        response_ids += ids
        steps += [k] * len(ids)
    if (traj.meta or {}).get("finish_reason") != "length" and tokenizer.eos_token_id is not None:
        response_ids.append(tokenizer.eos_token_id)
        steps.append(len(pieces) - 1)
    room = max(0, max_length - len(prompt_ids))
    if room == 0:
        raise UserError(f"trajectory '{traj.id}': the prompt alone has {len(prompt_ids)} tokens >= max_length={max_length}")
    return Sequence(traj.problem_id, prompt_ids, response_ids[:room], steps[:room], float(traj.reward))


def dpo_pairs(seqs: list[Sequence]) -> list[tuple[Sequence, Sequence]]:
    """(correct, incorrect) pairs per problem: the longer list is walked once, the shorter cycled,
    so every sample of a problem with both kinds is used at least once."""
    groups: dict[str, list[Sequence]] = defaultdict(list)
    for s in seqs:
        groups[s.problem_id].append(s)
    pairs = []
    for pid in groups:
        pos = [s for s in groups[pid] if s.reward >= 1.0]
        neg = [s for s in groups[pid] if s.reward < 1.0]
        if pos and neg:
            n = max(len(pos), len(neg))
            pairs += [(pos[i % len(pos)], neg[i % len(neg)]) for i in range(n)]
    return pairs


def collate(seqs: list[Sequence], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch in "shifted" coordinates: index j predicts token j+1 from state ids[:j+1].

    input_ids, attention_mask [B, L]; targets, action_mask, step_ids [B, L-1] (step_ids -1 off the
    response); step_first [B, K] (shifted index of each step's first token) with step_mask [B, K];
    rewards [B].
    """
    B = len(seqs)
    L = max(len(s.input_ids) for s in seqs)
    K = max(1, max((max(s.step_of_token) + 1) if s.step_of_token else 0 for s in seqs))
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    attn = torch.zeros((B, L), dtype=torch.long)
    step_full = torch.full((B, L), -1, dtype=torch.long)
    step_first = torch.zeros((B, K), dtype=torch.long)
    step_mask = torch.zeros((B, K), dtype=torch.float32)
    for i, s in enumerate(seqs):
        n, p = len(s.input_ids), len(s.prompt_ids)
        ids[i, :n] = torch.tensor(s.input_ids, dtype=torch.long)
        attn[i, :n] = 1
        if s.step_of_token:
            step_full[i, p:n] = torch.tensor(s.step_of_token, dtype=torch.long)
        seen = set()
        for j, k in enumerate(s.step_of_token):
            if k not in seen:
                seen.add(k)
                step_first[i, k] = p + j - 1
                step_mask[i, k] = 1.0
    step_ids = step_full[:, 1:]
    return {
        "input_ids": ids, "attention_mask": attn, "targets": ids[:, 1:],
        "action_mask": (step_ids >= 0).float(), "step_ids": step_ids,
        "step_first": step_first, "step_mask": step_mask,
        "rewards": torch.tensor([s.reward for s in seqs], dtype=torch.float32),
    }


def steps_per_epoch(n_items: int, batch_size: int) -> int:
    return max(1, math.ceil(n_items / batch_size))
