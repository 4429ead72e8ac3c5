#!/usr/bin/env bash
# The CPU tutorial: install, fine-tune the tiny-arith model on the arithmetic gym, evaluate it
# on held-out gym problems. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="${OUT_DIR:-runs/quickstart}"
start=$(date +%s)
reasoner train-sft run_dir="$OUT/sft" "$@"
reasoner decode model="$OUT/sft/final" run_dir="$OUT/decode" data.split=test data.num_problems=1000
# The README's expected range: test mean 48.6 +- 2 x sqrt(seed sd^2 + binomial se^2) over 3 seeds x 2
# thread counts of this recipe (docs/results/organism.md). Outside it, something in the install or the recipe moved.
python3 - "$OUT/decode/summary.json" <<'PY'
import json, sys
acc = json.load(open(sys.argv[1]))["accuracy"]
low, high = 0.43, 0.54
verdict = "inside" if low <= acc <= high else "OUTSIDE"
print(f"quickstart: held-out greedy accuracy {acc:.3f} ({verdict} the expected {low:.2f}-{high:.2f}; "
      "the organism's errors are its misconception, see docs/results/organism.md)")
PY
echo "quickstart: wall time $(( $(date +%s) - start )) s; per-problem results in $OUT/decode/results.jsonl"
