#!/usr/bin/env bash
# The real-model recipe (scripts/real_model.sh) at a larger budget on one GPU: the same stages,
# the same task and settings, more steps, data and samples; aimed at <= 10 minutes end to end on
# one H100/H200-class GPU (model.device=auto picks CUDA, bf16 weights). Page: docs/results/real_gpu.md.
#
# NOT RUN YET: no GPU has been lent to this project's sessions, so neither the wall time nor the
# figures are measured; the sizes below are estimates from the CPU runs (per-token generate cost
# on a GPU is launch-bound, ~20 ms per step for a batch of a 135M model).
#
# Usage: bash scripts/real_model_gpu.sh [stage ...]     (default: grpo sft prm offline report; the
# task was chosen by the CPU sweep, docs/results/real.md)
set -euo pipefail
cd "$(dirname "$0")/.."

export RUNS=${RUNS:-runs/real-gpu}
export REPORT=${REPORT:-docs/results/real_gpu.md}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
export DECODE_BATCH=${DECODE_BATCH:-256}
export GEN_BATCH=${GEN_BATCH:-64}
export GRPO_STEPS=${GRPO_STEPS:-50} GRPO_PROMPTS=${GRPO_PROMPTS:-8} GRPO_N=${GRPO_N:-8}
export SFT_N=${SFT_N:-2000}
export PRM_PROBLEMS=${PRM_PROBLEMS:-500}
export OFF_PROBLEMS=${OFF_PROBLEMS:-1000}
export TEST_N=${TEST_N:-1000}

if [[ "${DRY:-0}" != 1 ]] && ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "real_model_gpu.sh: no CUDA GPU here (scripts/real_model.sh is the CPU recipe; DRY=1 checks the commands)" >&2
  exit 2
fi
start=$SECONDS
bash scripts/real_model.sh ${*:-grpo gsm8k_base sft prm offline report}
echo "real_model_gpu.sh: $(( (SECONDS - start) / 60 )) min end to end"
