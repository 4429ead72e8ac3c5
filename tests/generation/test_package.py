"""reasoner.generation: the protocol imports without torch; HFGenerator loads on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports_in_fresh_interpreter(code: str) -> list[str]:
    """Heavy modules in sys.modules after running `code` in a new interpreter."""
    probe = code + "\nimport sys; print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return [m for m in out.stdout.strip().split(",") if m]


def test_search_and_config_import_without_torch():
    """The config loader imports reasoner.search for search params; that must stay light."""
    assert _imports_in_fresh_interpreter("import reasoner.search, reasoner.config") == []
    assert _imports_in_fresh_interpreter("from reasoner.generation import Completion, SamplingParams") == []


def test_hf_generator_is_importable_from_the_package_and_the_backend():
    from reasoner.generation import HFGenerator
    from reasoner.generation.hf import HFGenerator as direct, decode_batch
    from reasoner.generation.hf.engine import HFGenerator as engine

    assert HFGenerator is direct is engine and callable(decode_batch)
    assert _imports_in_fresh_interpreter("from reasoner.generation import HFGenerator") == ["torch", "transformers"]
