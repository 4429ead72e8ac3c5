"""PRM tokenisation: where tags go, which position a label trains, and that scoring reads the
same position (OpenR trains one token before the tag and reads at the tag: pinned here)."""

from __future__ import annotations

import pytest
import torch

from reasoner.char_tokenizer import build_char_tokenizer
from reasoner.prm.tokenization import encode_spans, encode_tagged, keep_last, place_labels

UNK = 3  # the char tokenizer maps 'к' and 'и' (not ASCII) to <unk>


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


def ids_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_hand_built_tagged_input(tok):
    # "Q\n" + "1" + " ки" + "\n" + "2" + " ки"
    #  0  1    2     3 4 5    6     7     8 9 10
    enc = encode_tagged(tok, "Q\n", ["1", "2"], " ки", "\n")
    space, nl = ids_of(tok, " ")[0], ids_of(tok, "\n")[0]
    expected = ids_of(tok, "Q\n1") + [space, UNK, UNK, nl] + ids_of(tok, "2") + [space, UNK, UNK]
    assert enc.input_ids == expected
    assert enc.positions == [5, 10]  # the LAST token of each tag, not the token before it (4, 9)
    assert enc.input_ids[6] == nl    # the separator follows the first tag


def test_positions_are_last_tag_token_for_any_solution(tok):
    tag = " ки"
    enc = encode_tagged(tok, "Compute: (2 + 3) * 4\n", ["2 + 3 = 5", "5 * 4 = 20", "Answer: 20"], tag, "\n")
    tag_ids = ids_of(tok, tag)
    for p in enc.positions:
        assert enc.input_ids[p - len(tag_ids) + 1:p + 1] == tag_ids
    # without the tags the text is exactly what the policy generated: prompt + sep.join(steps)
    text = tok.decode(enc.input_ids).replace(tok.unk_token * 2, "ки")
    assert text == "Compute: (2 + 3) * 4\n2 + 3 = 5 ки\n5 * 4 = 20 ки\nAnswer: 20 ки"


def test_truncation_drops_steps_whose_tag_is_cut(tok):
    full = encode_tagged(tok, "Q\n", ["1", "2"], " ки", "\n")
    cut = encode_tagged(tok, "Q\n", ["1", "2"], " ки", "\n", max_length=10)
    assert cut.input_ids == full.input_ids[:10]
    assert cut.positions == [5]


def test_labels_go_exactly_to_the_positions(tok):
    enc = encode_tagged(tok, "Q\n", ["a", "b", "c"], " ки", "\n")
    assert place_labels(enc.positions, [1.0, None, 0.25]) == [(enc.positions[0], 1.0), (enc.positions[2], 0.25)]


def test_spans_include_the_separator_before_a_step(tok):
    # "Q\n" "1" "\n" "2": 0 1 | 2 | 3 4
    enc = encode_spans(tok, "Q\n", ["1", "2"], "\n")
    assert enc.input_ids == ids_of(tok, "Q\n1\n2")
    assert enc.spans == [(2, 3), (3, 5)]
    # a step's span does not change when a later step is appended
    assert encode_spans(tok, "Q\n", ["1"], "\n").spans == [(2, 3)]
    cut = encode_spans(tok, "Q\n", ["1", "2"], "\n", max_length=4)
    assert cut.spans == [(2, 3), (3, 4)]


def test_keep_last():
    assert keep_last([1, 2, 3], 5) == ([1, 2, 3], 0)
    assert keep_last([1, 2, 3, 4, 5], 3) == ([3, 4, 5], 2)


def test_scoring_reads_where_training_trains(tmp_path):
    """The scorer's P(+) for step i and the training loss both use the logits at positions[i],
    computed here independently from a plain full forward pass."""
    from reasoner.config import ModelConfig, TinyConfig
    from reasoner.models import load_policy
    from reasoner.prm.examples import StepExample
    from reasoner.prm.model import PRMSpec
    from reasoner.scoring import DiscriminativeScorer
    from reasoner.prm.train import batch_loss, encode_items

    model, tok = load_policy(ModelConfig(device="cpu", seed=3, tiny=TinyConfig(hidden_size=32, num_layers=2, num_heads=2,
                                                                                num_kv_heads=1, intermediate_size=64)))
    spec = PRMSpec(step_separator="\n")
    plus, minus = ids_of(tok, "+")[0], ids_of(tok, "-")[0]
    enc = encode_tagged(tok, "Q\n", ["1", "2"], spec.step_tag, "\n")
    with torch.no_grad():
        logits = model(torch.tensor([enc.input_ids])).logits[0]
    diff = logits[:, plus] - logits[:, minus]

    scores = DiscriminativeScorer(model, tok, spec).score(["Q\n"], [["1", "2"]])[0]
    assert scores == pytest.approx(torch.sigmoid(diff[[5, 10]]).tolist(), abs=1e-5)
    assert scores != pytest.approx(torch.sigmoid(diff[[4, 9]]).tolist(), abs=1e-3)  # not one token early

    items = encode_items([StepExample("e/0", "e", "Q\n", ["1", "2"], [1.0, 0.0], 0.0)], tok, spec, 512)
    assert items[0].cols == [5, 10] and items[0].targets == [1.0, 0.0]
    loss, _ = batch_loss(model, None, spec, items, tok.pad_token_id, torch.device("cpu"), (plus, minus))
    two = torch.stack([logits[:, plus], logits[:, minus]], dim=-1)
    expected = torch.nn.functional.cross_entropy(two[[5, 10]], torch.tensor([0, 1]))  # '+' is class 0
    assert float(loss.detach()) == pytest.approx(float(expected), abs=1e-5)


def test_step_by_step_ids_rebuild_encode_tagged(tok):
    """A scorer extending a cached prefix one step at a time must see encode_tagged's sequence."""
    from reasoner.prm.tokenization import prompt_ids, tagged_step_ids

    steps = ["2 + 3 = 5", "5 * 4 = 20", "Answer: 20"]
    ids = prompt_ids(tok, "Compute: (2 + 3) * 4\n")
    for i, step in enumerate(steps):
        ids += tagged_step_ids(tok, step, " ки", "\n", first=i == 0)
    assert ids == encode_tagged(tok, "Compute: (2 + 3) * 4\n", steps, " ки", "\n").input_ids
