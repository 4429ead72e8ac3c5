"""The one step-scoring API used by decode (search) and RL: prompts + steps -> per-step scores.

    scorer = load_scorer(cfg.scorer, device)        # None for scorer.kind=none
    scores = scorer.score(prompts, steps)           # list[list[float]], every score in [0, 1]
    best = aggregate(scores[i], "min")              # min | last | prod | mean

Every scorer runs ONE forward pass per solution (all its steps at once), batched across
solutions (sorted by length to cut padding). Kinds:

- prm       discriminative PRM: P(+) at each step tag (`reasoner.prm.tokenization.encode_tagged`),
            from the '+'/'-' logits (tokens head) or sigmoid of a 1-logit head (scalar head).
- implicit  implicit PRM (PRIME): sigmoid(beta * sum of log pi/pi_ref over the step's tokens)
            ("step"), or over all tokens so far ("cumulative", a Q-value), per prm.json.
- value     a `models.ValueModel` (e.g. OREO's): V at the last token of each step, clipped to [0, 1].
- orm       outcome mode over any of the above: only the end of the solution is scored and every
            step gets that same score (so all aggregations equal it; no NaN). For a
            discriminative PRM it is the last tag's P(+); for an implicit PRM
            sigmoid(beta * log-ratio of the whole response), the quantity it was trained on.

Solutions longer than the scorer's context are cut on the left (the prompt's start goes
first); a step whose read position falls off is read at the first kept token.

    base            StepScorer, aggregate, the shared batching
    discriminative  DiscriminativeScorer (with the prefix KV-cache)
    spans           ImplicitScorer, ValueScorer, OutcomeScorer
    loading         load_scorer, scorer_from_prm
"""

from reasoner.scoring.base import AGGREGATIONS, KINDS, StepScorer, aggregate
from reasoner.scoring.discriminative import DiscriminativeScorer
from reasoner.scoring.loading import load_scorer, scorer_from_prm
from reasoner.scoring.spans import ImplicitScorer, OutcomeScorer, ValueScorer

__all__ = [
    "AGGREGATIONS", "KINDS", "DiscriminativeScorer", "ImplicitScorer", "OutcomeScorer", "StepScorer", "ValueScorer",
    "aggregate", "load_scorer", "scorer_from_prm",
]
