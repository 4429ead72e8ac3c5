"""The PRM path cache is really used (not silently the full pass) on tiny Llama and Qwen2."""

from __future__ import annotations

import pytest
import torch

from reasoner import config
from tests.conftest import TINY

PROMPTS = ["Compute: (2 + 3) * 4\n", "Compute: 7 - 1\n"]
STEPS = [["2 + 3 = 5", "5 * 4 = 20", "Answer: 20"], ["7 - 1 = 6", "Answer: 6"]]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_scored_paths_are_stored_and_extended(arch, one_thread):
    from reasoner.models import load_policy
    from reasoner.prm.model import PRMSpec
    from reasoner.prm.path_cache import takes_plain_cache
    from reasoner.scoring import DiscriminativeScorer

    torch.manual_seed(0)
    model, tok = load_policy(config.load("train_rl", [*TINY, f"model.tiny.arch={arch}"]).model)
    scorer = DiscriminativeScorer(model.eval(), tok, PRMSpec(step_separator="\n"))
    assert takes_plain_cache(scorer.model)
    scorer.score(PROMPTS, [s[:1] for s in STEPS])
    stored = scorer._paths.bytes
    assert stored > 0
    got = scorer.score(PROMPTS, STEPS)  # each solution extends a stored one
    assert scorer._paths.bytes > stored
    with torch.inference_mode():
        full = scorer._score_full(PROMPTS, STEPS)
    for a, b in zip(got, full):
        assert a == pytest.approx(b, abs=1e-5)
