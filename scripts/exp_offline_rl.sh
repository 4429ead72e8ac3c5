#!/usr/bin/env bash
# Offline RL on the arithmetic gym (docs/offline_rl.md): from one SFT checkpoint and ONE collected
# data set, held-out greedy pass@1 of SFT, RFT, DPO, OREO (token, step) over seeds; iterative
# OREO accuracy per round; OREO value-guided beam search vs greedy.
# Sizes come from the environment so the same recipe runs small on a shared CPU or large on a GPU:
#   SFT=runs/gym-sft/final PROBLEMS=1000 N=16 SEEDS="0 1 2" bash scripts/exp_offline_rl.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SFT=${SFT:-runs/gym-sft/final}
OUT=${OUT:-runs/offline}
PROBLEMS=${PROBLEMS:-1000}         # train problems to collect on (data.seed=1: another draw than SFT's; never test problems)
N=${N:-16}                         # samples per problem before balanced selection (<= 4 correct + <= 4 wrong kept)
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-2}
LR=${LR:-1e-4}                     # policy lr (all methods)
VALUE_LR=${VALUE_LR:-1e-3}         # OREO value model lr (tiny model: the zero-init head needs more than the paper's 5e-6)
EVAL=${EVAL:-200}                  # held-out test problems for greedy pass@1
ROUNDS=${ROUNDS:-2}                # iterative OREO
ITER_PROBLEMS=${ITER_PROBLEMS:-$PROBLEMS}
BEAMS=${BEAMS:-4}                  # value-guided beam: B beams x B expansions
BEAM_PROBLEMS=${BEAM_PROBLEMS:-$EVAL}
R="nice -n 10 python -m reasoner"
# one intra-op thread per process: on a shared, oversubscribed CPU torch's default thread pool
# made a training step ~25x slower (measured: 22 vs 1057 tokens/s for the same OREO step)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
GEN="generation.n=$N generation.temperature=1.0 generation.max_new_tokens=96 generation.batch_size=256"

# 1. collect once from the SFT policy (resumable; skipped when done)
if [ -z "${DATA:-}" ] && [ ! -f "$OUT/collect/summary.json" ]; then
  $R collect model="$SFT" model.chat_template=none data=arith data.split=train data.seed=1 \
    data.num_problems="$PROBLEMS" selection=balanced $GEN problems_per_chunk=32 run_dir="$OUT/collect"
fi
DATA=${DATA:-$OUT/collect/trajectories.jsonl}

# 2. SFT baseline (the starting policy) with the same greedy evaluation
$R decode model="$SFT" model.chat_template=none data.split=test data.num_problems="$EVAL" \
  generation.max_new_tokens=128 run_dir="$OUT/sft-eval" >/dev/null

# 3. RFT, DPO, OREO-token, OREO-step x seeds, all from the same SFT checkpoint and data
COMMON="model=$SFT model.chat_template=none train_file=$DATA epochs=$EPOCHS steps=0 batch_size=16 \
  optim.lr=$LR eval_problems=$EVAL eval_every=0 save_every=100 generation.max_new_tokens=128"
train_seed() {
  local seed=$1
  $R train-rl algo=oreo algo.level=token algo.kl_coef=0.01 algo.value_lr="$VALUE_LR" $COMMON seed="$seed" run_dir="$OUT/oreo-token-s$seed"
  $R train-rl algo=oreo algo.level=step algo.kl_coef=0.1 algo.value_lr="$VALUE_LR" $COMMON seed="$seed" run_dir="$OUT/oreo-step-s$seed"
  $R train-rl algo=rft $COMMON seed="$seed" run_dir="$OUT/rft-s$seed"
  $R train-rl algo=dpo $COMMON seed="$seed" run_dir="$OUT/dpo-s$seed"
}
FIRST=${SEEDS%% *}
train_seed "$FIRST"

# 4. (after the first seed) iterative OREO: round 1 on the collected data, round k > 1 collects with round k-1's policy
$R train-rl algo=oreo algo.level=token algo.value_lr="$VALUE_LR" $COMMON seed="$FIRST" rounds="$ROUNDS" \
  data.num_problems="$ITER_PROBLEMS" generation.n="$N" generation.temperature=1.0 run_dir="$OUT/oreo-iter"

# 5. value-guided beam (OREO policy + OREO value) vs greedy of the same policy on the same problems
POL="$OUT/oreo-token-s$FIRST/final"
$R decode model="$POL" model.chat_template=none data.split=test data.num_problems="$BEAM_PROBLEMS" \
  generation.max_new_tokens=128 run_dir="$OUT/greedy-oreo" >/dev/null
$R decode model="$POL" model.chat_template=none data.split=test data.num_problems="$BEAM_PROBLEMS" \
  search=value_beam search.params.beams="$BEAMS" generation.n=$((BEAMS * BEAMS)) generation.max_new_tokens=128 \
  scorer.kind=value scorer.path="$OUT/oreo-token-s$FIRST/value" run_dir="$OUT/value-beam-oreo" >/dev/null

for seed in $SEEDS; do
  [ "$seed" = "$FIRST" ] || train_seed "$seed"
done

# 6. the table
python - "$OUT" "$SEEDS" <<'PY'
import json, statistics, sys
from pathlib import Path
out, seeds = Path(sys.argv[1]), sys.argv[2].split()
acc = lambda p: json.loads((out / p / "summary.json").read_text())
sft = acc("sft-eval")["accuracy"]
print("| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |\n|---|" + "---|" * (len(seeds) + 1))
print(f"| SFT (start) | " + " | ".join(f"{sft:.3f}" for _ in seeds) + f" | {sft:.3f} |")
for name, label in [("rft", "RFT"), ("dpo", "DPO"), ("oreo-token", "OREO token"), ("oreo-step", "OREO step")]:
    vals = [acc(f"{name}-s{s}")["eval_accuracy"] for s in seeds]
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {statistics.mean(vals):.3f} ± {sd:.3f} |")
it = acc("oreo-iter")
print("\niterative OREO, held-out accuracy per round:", it["eval_accuracy_per_round"])
g, b = acc("greedy-oreo")["accuracy"], acc("value-beam-oreo")["accuracy"]
print(f"greedy {g:.3f}  value-beam {b:.3f}  relative gain {(b - g) / max(g, 1e-9):+.1%}")
PY
