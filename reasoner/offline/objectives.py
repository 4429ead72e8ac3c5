"""Model forwards -> the offline losses: picks the state/action positions, the maths is in reasoner.algos.

Every function takes a batch from `reasoner.offline.data.collate` (shifted coordinates: index j
is the state ids[:j+1] and the action ids[j+1]) already on the models' device.
"""

from __future__ import annotations

import torch

from reasoner.algos import dpo_loss, full_vocab_kl, k3, oreo_policy_loss, oreo_value_loss, step_sums, token_logprobs
from reasoner.dist import batch_mean, masked_batch_mean  # means over every rank's batch (on one process: plain means)

LEVELS = ("token", "step", "response")
KL_ESTIMATORS = ("full", "k3")


def policy_logits(model, batch) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits[:, :-1]


def states(batch, level: str, token_values: torch.Tensor, token_rho: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(V, rho, mask) over the level's states: every response token; the state before each step
    with rho summed over the step; or only the first state with rho summed over the response."""
    if level == "token":
        return token_values, token_rho, batch["action_mask"]
    if level == "step":
        step_ids, first, mask = batch["step_ids"], batch["step_first"], batch["step_mask"]
    else:
        step_ids = torch.where(batch["step_ids"] >= 0, torch.zeros_like(batch["step_ids"]), batch["step_ids"])
        first = batch["step_first"][:, :1]
        mask = batch["step_mask"].max(dim=1, keepdim=True).values
    rho = step_sums(token_rho, step_ids, first.size(1))
    return token_values.gather(1, first), rho, mask


def oreo_losses(policy, value_model, reference, batch, level: str, beta: float, kl_coef: float, kl_estimator: str):
    """(value_loss, policy_loss, metrics) for one minibatch, ALGORITHMS.md §6.

    The value loss reaches only the value model (rho is stop-gradiented inside it) and the
    policy loss only the policy (V enters it detached), so one backward of their sum is the
    critic step and the actor step with V from before the critic update.
    """
    logits = policy_logits(policy, batch)
    with torch.no_grad():
        ref_logits = reference(batch["input_ids"], batch["attention_mask"])[:, :-1]
    logp = token_logprobs(logits, batch["targets"])
    ref_logp = token_logprobs(ref_logits, batch["targets"])
    amask = batch["action_mask"]
    rho_tok = (logp - ref_logp) * amask
    values_tok = value_model(batch["input_ids"], batch["attention_mask"])[:, :-1]
    V, rho, smask = states(batch, level, values_tok, rho_tok)
    v_loss, v_metrics = oreo_value_loss(V, rho, smask, batch["rewards"], beta, mean=masked_batch_mean)
    p_loss, p_metrics = oreo_policy_loss(V, rho, smask, batch["rewards"], beta, mean=masked_batch_mean)
    kl_tok = full_vocab_kl(logits, ref_logits) if kl_estimator == "full" else k3(logp, ref_logp)
    kl = masked_batch_mean(kl_tok, amask)
    policy_total = p_loss + kl_coef * kl
    metrics = {**v_metrics, **p_metrics, "kl": float(kl.detach()),
               "value_mean": float(masked_batch_mean(V.detach(), smask)),
               "rho_mean": float(masked_batch_mean(rho_tok.detach(), amask))}
    return v_loss, policy_total, metrics


def sequence_logprob(model_or_ref, batch, grad: bool) -> torch.Tensor:
    """Summed log-prob of the response tokens [B]."""
    with torch.set_grad_enabled(grad):
        if grad:
            logits = policy_logits(model_or_ref, batch)
        else:
            logits = model_or_ref(batch["input_ids"], batch["attention_mask"])[:, :-1]
        return (token_logprobs(logits, batch["targets"]) * batch["action_mask"]).sum(-1)


def dpo_losses(policy, reference, chosen, rejected, beta: float):
    """DPO on (correct, incorrect) pairs: chosen/rejected are collated batches of equal size."""
    ref_c = sequence_logprob(reference, chosen, grad=False)
    ref_r = sequence_logprob(reference, rejected, grad=False)
    return dpo_loss(sequence_logprob(policy, chosen, True), sequence_logprob(policy, rejected, True), ref_c, ref_r, beta,
                    mean=lambda x: batch_mean(x.sum(), x.numel()))


def rft_loss(policy, batch):
    """SFT's loss (`train.sft.response_loss`: the mean next-token cross-entropy over the response
    tokens) on a collated batch; RFT is SFT on the correct samples."""
    from reasoner.train.sft import response_loss

    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 1:] = torch.where(batch["action_mask"] > 0, batch["targets"], labels[:, 1:])
    total, n = response_loss(policy, batch["input_ids"], batch["attention_mask"], labels)
    loss = batch_mean(total, n)
    return loss, {"sft_loss": float(loss.detach())}
