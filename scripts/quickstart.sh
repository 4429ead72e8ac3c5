#!/usr/bin/env bash
# The CPU tutorial: install, fine-tune the tiny-arith model on the arithmetic gym, evaluate it
# on held-out gym problems. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="${OUT_DIR:-runs/quickstart}"
start=$(date +%s)
reasoner train-sft run_dir="$OUT/sft" "$@"
reasoner decode model="$OUT/sft/final" run_dir="$OUT/decode" data.split=test data.num_problems=200
echo "quickstart: wall time $(( $(date +%s) - start )) s; per-problem results in $OUT/decode/results.jsonl"
