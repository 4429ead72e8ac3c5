"""Shared fixtures of the generation tests: the in-memory character tokenizer and tiny Llama."""

from __future__ import annotations

import pytest

from tests.generation.tiny import char_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer)
