"""The optimisation half of an online RL step: epochs x minibatches x micro-batches over one
rollout batch, clipped policy loss (+ KL, + critic loss), exact aggregation across micro-batches.

Micro-batch losses are weighted so their sum equals the loss of the whole minibatch computed at
once (token-mean by token counts, the other aggregations by row counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reasoner.algos import POLICY_LOSSES, aggregate, clipped_value_loss, full_vocab_kl
from reasoner.dist import backward, world_size
from reasoner.rl.batch import RolloutBatch, reference_outputs, response_logprobs, response_values
from reasoner.utils.guard import RefusedStep, StepGuard, check_loss, guarded_step

NonFiniteLoss = RefusedStep  # the name the RL stage and tests catch: a loss, gradient or update the guard refused


@dataclass
class UpdatePlan:
    epochs: int = 1  # passes over the batch (num_iterations; ppo_epochs for PPO)
    minibatch_size: int | None = None  # rows per optimizer step (None: the whole batch)
    micro_batch: int = 16  # rows per forward/backward
    eps_low: float = 0.2
    eps_high: float = 0.2
    dual_clip: float | None = None
    aggregation: str = "token-mean"
    importance_level: str = "token"  # token | sequence
    beta: float = 0.0
    kl_estimator: str = "k3"  # k3 | full | reward (reward: already in the advantages)
    max_len: int | None = None  # Dr. GRPO's constant normaliser
    value_clip: float | None = 0.2
    max_grad_norm: float = 1.0
    temperature: float = 1.0  # the sampling temperature: every log-prob (policy, old, reference) is taken at it
    max_update_ratio: float | None = 1.0  # the guard's bound on |delta| / |params| per optimizer step

    def minibatches(self, B: int, rng: torch.Generator) -> list[torch.Tensor]:
        size = self.minibatch_size or B
        order = torch.randperm(B, generator=rng) if size < B else torch.arange(B)
        return [order[i:i + size] for i in range(0, B, size)]

    def needs_old_pass(self, B: int) -> bool:
        """Old log-probs need their own no-grad pass unless the first optimizer step sees every row."""
        return (self.minibatch_size or B) < B


@dataclass
class _Totals:
    """A minibatch's loss-mask tokens and rows over every rank: the micro-batch weights'
    denominators, so that the ranks' averaged gradient is the global minibatch's."""

    tokens: float
    rows: float

    @classmethod
    def of(cls, mask: torch.Tensor, mb_rows: torch.Tensor) -> "_Totals":
        from reasoner import dist

        return cls(dist.all_sum(float(mask[mb_rows].sum())), dist.all_sum(len(mb_rows)))


def _weight(plan: UpdatePlan, mask: torch.Tensor, rows: torch.Tensor, totals: _Totals) -> float:
    from reasoner.dist import world_size

    if plan.importance_level == "token" and plan.aggregation == "token-mean":
        return world_size() * float(mask[rows].sum()) / max(1.0, totals.tokens)
    return world_size() * len(rows) / totals.rows


@torch.no_grad()
def no_grad_logprobs(model, batch: RolloutBatch, micro: int, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs of the whole batch under `model` at `temperature` (eval-free: same mode as training)."""
    parts = [response_logprobs(model, batch.rows(slice(i, i + micro)), temperature=temperature)[0]
             for i in range(0, batch.input_ids.size(0), micro)]
    return torch.cat(parts)


@torch.no_grad()
def no_grad_reference(reference, batch: RolloutBatch, micro: int, temperature: float = 1.0) -> torch.Tensor:
    parts = [reference_outputs(reference, batch.rows(slice(i, i + micro)), temperature=temperature)[0]
             for i in range(0, batch.input_ids.size(0), micro)]
    return torch.cat(parts)


@torch.no_grad()
def no_grad_values(critic, batch: RolloutBatch, micro: int) -> torch.Tensor:
    parts = [response_values(critic, batch.rows(slice(i, i + micro))) for i in range(0, batch.input_ids.size(0), micro)]
    return torch.cat(parts)


def policy_update(model, optimizer, scheduler, batch: RolloutBatch, advantages: torch.Tensor, mask: torch.Tensor,
                  plan: UpdatePlan, rng: torch.Generator, old_logp: torch.Tensor | None = None,
                  ref_logp: torch.Tensor | None = None, reference=None, critic=None, critic_optimizer=None,
                  old_values: torch.Tensor | None = None, returns: torch.Tensor | None = None) -> dict[str, float]:
    """Run plan.epochs x minibatches optimizer steps; returns metrics averaged over micro-batches.

    old_logp None: taken (detached) from the first pass, valid when the first optimizer step
    covers the whole batch. Every optimizer step goes through the guard (utils/guard.py): a
    NaN/inf loss or gradient norm raises NonFiniteLoss before the step, a non-finite or exploding
    update raises it with the step undone.
    """
    B = batch.input_ids.size(0)
    guards = [StepGuard(optimizer, "policy", plan.max_grad_norm, plan.max_update_ratio)]
    if critic_optimizer is not None:
        guards.append(StepGuard(critic_optimizer, "critic", plan.max_grad_norm, plan.max_update_ratio))
    run = _Pass(model, batch, advantages, mask, plan, ref_logp, reference, critic, old_values, returns)
    run.optimizers = (optimizer, critic_optimizer)
    stored = [None] * B if old_logp is None else None
    for epoch in range(plan.epochs):
        for mb in plan.minibatches(B, rng):
            optimizer.zero_grad(set_to_none=True)
            if critic_optimizer is not None:
                critic_optimizer.zero_grad(set_to_none=True)
            total, totals = 0.0, _Totals.of(mask, mb)
            for i in range(0, len(mb), plan.micro_batch):
                total += run.micro_batch(mb[i:i + plan.micro_batch], totals, epoch, old_logp, stored)
            grad_norm = guarded_step(*guards)[0]
            scheduler.step()
            run.note("loss", total)
            run.note("grad_norm", grad_norm)
        if stored is not None:
            old_logp = torch.stack(stored)
            stored = None
    return {k: run.sums[k] / max(1, run.counts[k]) for k in run.sums}


class _Pass:
    """What every micro-batch of one policy_update shares, and the running metric means."""

    def __init__(self, model, batch, advantages, mask, plan, ref_logp, reference, critic, old_values, returns):
        self.model, self.batch, self.advantages, self.mask, self.plan = model, batch, advantages, mask, plan
        self.ref_logp, self.reference, self.critic, self.old_values, self.returns = ref_logp, reference, critic, old_values, returns
        self.optimizers = (None, None)  # (policy, critic): whose strategy each backward goes through
        self.use_k3 = plan.beta != 0.0 and plan.kl_estimator == "k3"
        self.use_full = plan.beta != 0.0 and plan.kl_estimator == "full"
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def note(self, key, value, w=1) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(value) * w
        self.counts[key] = self.counts.get(key, 0) + w

    def micro_batch(self, rows, totals: _Totals, epoch: int, old_logp, stored) -> float:
        """Forward + backward of one micro-batch (policy, and critic if any); its weighted loss."""
        plan = self.plan
        sub = self.batch.rows(rows.to(self.batch.input_ids.device))
        m = self.mask[rows]
        logp, ent, logits = response_logprobs(self.model, sub, with_entropy=epoch == 0, keep_logits=self.use_full,
                                              temperature=plan.temperature)
        if old_logp is not None:
            old = old_logp[rows]
        else:
            old = stored_old = logp.detach()
            for j, r in enumerate(rows.tolist()):
                stored[r] = stored_old[j]
        loss, met = self.surrogate(logp, logits, old, rows, sub, m)
        w = _weight(plan, self.mask, rows, totals)
        check_loss("policy loss", loss)
        backward(loss * w, self.optimizers[0])
        if self.critic is not None:
            values = response_values(self.critic, sub)
            vloss, vmet = clipped_value_loss(values, self.old_values[rows], self.returns[rows], m, plan.value_clip)
            check_loss("value loss", vloss)
            backward(vloss * (world_size() * len(rows) / totals.rows), self.optimizers[1])
            self.note("value_loss", vmet["value_loss"], len(rows))
        for k, v in met.items():
            self.note(k, v, len(rows))
        if ent is not None:
            self.note("entropy", float((ent * m).sum() / m.sum().clamp(min=1)), len(rows))
        return float(loss.detach()) * w

    def surrogate(self, logp, logits, old, rows, sub, m) -> tuple[torch.Tensor, dict]:
        """The importance level's clipped surrogate (algos.POLICY_LOSSES) + the KL term."""
        plan = self.plan
        loss, met = POLICY_LOSSES[plan.importance_level](
            logp, old, self.advantages[rows], m, plan.eps_low, plan.eps_high, plan.dual_clip,
            ref_logp=self.ref_logp[rows] if self.use_k3 else None, beta=plan.beta if self.use_k3 else 0.0,
            aggregation=plan.aggregation, max_len=plan.max_len)
        if self.use_full:
            ref_logits = reference_outputs(self.reference, sub, keep_logits=True, temperature=plan.temperature)[1]
            kl = full_vocab_kl(logits, ref_logits)
            loss = loss + plan.beta * aggregate(kl, m, plan.aggregation, plan.max_len)
            met["kl"] = float((kl.detach() * m).sum() / m.sum().clamp(min=1))
        return loss, met
