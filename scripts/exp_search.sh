#!/usr/bin/env bash
# Search experiments (docs/search.md): accuracy-vs-budget sweeps on the gym and on GSM8K, and the
# beam-vs-sampling throughput benchmark (docs/benchmarks.md).
#
#   bash scripts/exp_search.sh gym      # SFT'd tiny-arith + Shepherd PRM, 200 held-out problems, n = 1..64
#   bash scripts/exp_search.sh oracle   # the same with the gym's exact step checker as scorer (upper bound)
#   bash scripts/exp_search.sh gsm8k    # smollm2-135m on a GSM8K slice, n = 1..8 (runs end to end)
#   bash scripts/exp_search.sh bench    # beam search vs plain sampling tokens/s
#   bash scripts/exp_search.sh prm      # the Shepherd PRM used above, if you have none
#
# Env: MODEL (runs/gym-sft/final), PRM (runs/search/prm-shepherd-hard/final), OUT (runs/search),
# PROBLEMS (200), GSM_PROBLEMS (2). Sweeps resume: re-running skips finished cells.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-runs/gym-sft/final}
PRM=${PRM:-runs/search/prm-shepherd-hard/final}
OUT=${OUT:-runs/search}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread per process: far faster on a shared CPU
METHODS="[majority,prm_min_max,prm_min_vote,prm_last_max,prm_last_vote,beam,dvts,mcts,value_beam]"

case "${1:-gym}" in
prm)
  # Math-Shepherd labels (8 rollouts per prefix) on 4 samples of 500 training problems, then a PRM
  # trained on the hard labels (a step is positive when some rollout from it reached the answer).
  nice -n 10 python -m reasoner collect model="$MODEL" data.split=train data.num_problems=500 n=4 max_tokens=64 \
      labels=shepherd labels.rollouts=8 run_dir="$OUT/collect-shepherd"
  nice -n 10 python -m reasoner train-prm model="$MODEL" train_file="$OUT/collect-shepherd/trajectories.jsonl" \
      run_dir="$OUT/prm-shepherd-hard" epochs=8 batch_size=32 optim.lr=1e-3 prm.label_type=hard prm.threshold=0.01
  ;;
gym)
  nice -n 10 python -m reasoner decode model="$MODEL" data.split=test data.num_problems="${PROBLEMS:-200}" \
      --sweep n=1,2,4,8,16,32,64 sweep_methods="$METHODS" scorer.kind=prm scorer.path="$PRM" scorer.batch_size=64 \
      generation.max_new_tokens=64 generation.batch_size=64 run_dir="$OUT/gym-sweep"
  mkdir -p docs/search && cp "$OUT/gym-sweep/sweep.md" docs/search/gym-sweep.md && cp "$OUT/gym-sweep/sweep.png" docs/search/gym-sweep.png
  ;;
oracle)
  # the same sweep with the gym's exact step checker as the scorer (upper bound for any PRM)
  nice -n 10 python scripts/sweep_gym_oracle.py --model "$MODEL" --problems "${PROBLEMS:-200}" \
      --budgets 1 2 4 8 16 32 64 --run-dir "$OUT/gym-oracle-sweep"
  mkdir -p docs/search && cp "$OUT/gym-oracle-sweep/sweep.md" docs/search/gym-oracle-sweep.md \
      && cp "$OUT/gym-oracle-sweep/sweep.png" docs/search/gym-oracle-sweep.png
  ;;
gsm8k)
  # The PRM is the gym's (character-level, trained on arithmetic lines): its GSM8K scores carry
  # little signal; this run shows the pipeline working end to end on a real model and dataset.
  nice -n 10 python -m reasoner decode model=smollm2-135m data=gsm8k data.path=../shared/data/gsm8k/test.jsonl \
      data.limit="${GSM_PROBLEMS:-2}" --sweep n=1,2,4,8 sweep_methods="$METHODS" scorer.kind=prm scorer.path="$PRM" \
      generation.max_new_tokens=192 generation.batch_size=32 generation.prefix_cache=true run_dir="$OUT/gsm8k-sweep"
  mkdir -p docs/search && cp "$OUT/gsm8k-sweep/sweep.md" docs/search/gsm8k-sweep.md && cp "$OUT/gsm8k-sweep/sweep.png" docs/search/gsm8k-sweep.png
  ;;
bench)
  for cache in false true; do
    nice -n 10 python scripts/bench_search.py --model "$MODEL" --data arith --problems 32 --widths 4 16 64 \
        --prm "$PRM" --threads 1 --repeats 3 --out "$OUT/bench-search-cache-$cache.json" generation.prefix_cache=$cache
  done
  ;;
*) echo "usage: $0 gym|oracle|gsm8k|bench|prm" >&2; exit 2 ;;
esac
