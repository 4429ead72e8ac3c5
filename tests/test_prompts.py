"""Prompt length bounds: one line naming file/line/field, or skip / truncate when asked; the
model's positions leave room for max_new_tokens; a huge prompt is never tokenised whole."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import pytest

from reasoner.char_tokenizer import build_char_tokenizer
from reasoner.config import DataConfig
from reasoner.data import Problem, Where
from reasoner.errors import DataError, UserError
from reasoner.prompts import bound_prompts, encode_prompt, model_positions

TOK = build_char_tokenizer()


def _problems(*lengths: int) -> list[Problem]:
    return [Problem(id=f"p{i}", prompt="x" * (n - 1) + "?", answer="1", source="t", where=Where("data/x.jsonl", i + 1, "question"))
            for i, n in enumerate(lengths)]


def test_long_prompt_is_one_line_naming_file_line_and_field():
    with pytest.raises(DataError) as err:
        bound_prompts(_problems(10, 600, 10), TOK, DataConfig(max_prompt_tokens=500))
    assert str(err.value) == ("data/x.jsonl:2: field 'question': prompt is 600 tokens, over data.max_prompt_tokens=500 "
                              "(set data.on_long_prompt=skip|truncate to go on)")


def test_skip_drops_long_prompts_and_says_how_many(capsys):
    kept = bound_prompts(_problems(10, 600, 10), TOK, DataConfig(max_prompt_tokens=500, on_long_prompt="skip"))
    assert [p.id for p in kept] == ["p0", "p2"]
    assert "skipped 1 of 3 prompts longer than 500 tokens" in capsys.readouterr().err
    with pytest.raises(UserError, match="all 1 prompts are longer"):
        bound_prompts(_problems(600), TOK, DataConfig(max_prompt_tokens=500, on_long_prompt="skip"))


def test_truncate_keeps_the_end_of_the_prompt_as_sent():
    def render(text: str) -> str:
        return "Question: " + text + "\n"

    probs = _problems(10, 600)
    kept = bound_prompts(probs, TOK, DataConfig(max_prompt_tokens=100, on_long_prompt="truncate"), render)
    assert kept[0] is probs[0]
    assert len(encode_prompt(TOK, render(kept[1].prompt))) <= 100
    assert len(kept[1].prompt) >= 85 and probs[1].prompt.endswith(kept[1].prompt)   # the question mark stays
    assert kept[1].where == probs[1].where


def test_prompt_and_max_new_tokens_must_fit_the_models_positions():
    data = DataConfig(max_prompt_tokens=2048)
    assert len(bound_prompts(_problems(256), TOK, data, max_new_tokens=256, positions=512)) == 1
    with pytest.raises(DataError, match=r"prompt is 300 tokens; with generation.max_new_tokens=256 that is over "
                                        r"the model's 512 positions"):
        bound_prompts(_problems(300), TOK, data, max_new_tokens=256, positions=512)
    with pytest.raises(UserError, match="leaves no room"):
        bound_prompts(_problems(3), TOK, data, max_new_tokens=512, positions=512)


def test_huge_prompt_is_rejected_without_tokenising_all_of_it():
    huge = replace(_problems(1)[0], prompt="1+" * (10 << 20))   # 20 MB
    started = time.time()
    with pytest.raises(DataError, match=r"prompt is more than \d+ tokens \(20971520 characters\), over data.max_prompt_tokens=2048"):
        bound_prompts([huge], TOK, DataConfig())
    assert time.time() - started < 3
    cut = bound_prompts([huge], TOK, DataConfig(on_long_prompt="truncate"))[0]
    assert len(encode_prompt(TOK, cut.prompt)) <= 2048


def test_records_without_a_location_are_named_by_id_and_bad_settings_are_config_errors():
    @dataclass
    class Rec:
        id: str
        prompt: str

    with pytest.raises(UserError, match="record 'gym-1': prompt is 50 tokens"):
        bound_prompts([Rec("gym-1", "y" * 50)], TOK, DataConfig(max_prompt_tokens=10))
    with pytest.raises(UserError, match="data.on_long_prompt must be one of error, skip, truncate"):
        bound_prompts([], TOK, DataConfig(on_long_prompt="cut"))
    with pytest.raises(UserError, match="data.max_prompt_tokens must be >= 1"):
        bound_prompts([], TOK, DataConfig(max_prompt_tokens=0))
    assert bound_prompts([Rec("a", "y" * 5000)], TOK, DataConfig(max_prompt_tokens=None)) == [Rec("a", "y" * 5000)]


def test_model_positions_reads_the_config():
    class M:
        config = type("C", (), {"max_position_embeddings": 512})()

    assert model_positions(M()) == 512 and model_positions(object()) is None
