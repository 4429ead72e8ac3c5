#!/usr/bin/env bash
# Install reasoner with its test dependencies and run the test suite (CPU only, no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
python3 -m pytest -q "$@"
