#!/usr/bin/env bash
# Install reasoner with its test dependencies and run the test suite (CPU only, no downloads).
# Dependencies at constraints.txt's versions; REASONER_LATEST_DEPS=1: the newest ones allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
echo "dependencies: $([ "${REASONER_LATEST_DEPS:-0}" = "1" ] && echo "latest allowed by pyproject.toml" || echo "constraints.txt")"
python3 - <<'PY'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets")))
PY
python3 -m pytest -q "$@"
