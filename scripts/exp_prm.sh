#!/usr/bin/env bash
# PRMs on the arithmetic gym, judged against the ground-truth step checker (docs/prm.md).
#
# 1. collect: the SFT'd gym policy samples N solutions for each of N_TRAIN training problems;
#    the SAME samples are labelled three ways (exact truth, Math-Shepherd MC, OmegaPRM MC), and
#    N solutions for each of N_TEST held-out problems get ground-truth labels (the eval set).
# 2. train-prm: discriminative PRMs on truth (the ceiling), on Shepherd and on OmegaPRM labels
#    (hard at "> 0" as Math-Shepherd defines it, hard at 0.5, and soft), and an implicit PRM
#    from outcomes only. Same init (the policy), same recipe for all.
# 3. eval-prm: every PRM on the same held-out set; a markdown table at the end.
#
# Usage: bash scripts/exp_prm.sh            (env: POLICY, OUT, N_TRAIN, N_TEST, N, EPOCHS, LR)
# Needs runs/gym-sft/final (bash scripts/quickstart.sh, or reasoner train-sft run_dir=runs/gym-sft).
set -euo pipefail
cd "$(dirname "$0")/.."

POLICY=${POLICY:-runs/gym-sft/final}
OUT=${OUT:-runs/exp-prm}
N_TRAIN=${N_TRAIN:-500}     # training problems
N_TEST=${N_TEST:-200}       # held-out problems
N=${N:-4}                   # samples per problem
EPOCHS=${EPOCHS:-4}
LR=${LR:-1e-3}
# one thread per process: on a small shared CPU two threads per process oversubscribe the cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
R="nice -n 10 python -m reasoner"

[ -d "$POLICY" ] || { echo "policy $POLICY not found: train it first (scripts/quickstart.sh)" >&2; exit 2; }

# ---------------------------------------------------------------- 1. data
COLLECT="model=$POLICY data.split=train data.num_problems=$N_TRAIN n=$N max_tokens=64"
$R collect $COLLECT labels=truth run_dir=$OUT/collect-truth
$R collect $COLLECT labels=shepherd labels.rollouts=8 run_dir=$OUT/collect-shepherd
$R collect $COLLECT labels=omegaprm labels.rollouts=8 labels.budget=56 run_dir=$OUT/collect-omegaprm
$R collect model=$POLICY data.split=test data.num_problems=$N_TEST n=$N max_tokens=64 generation.seed=1 \
    labels=truth run_dir=$OUT/collect-test

# ---------------------------------------------------------------- 2. PRMs
train() {  # name, label source, extra overrides...
    local name=$1 source=$2
    shift 2
    $R train-prm model=$POLICY train_file=$OUT/collect-$source/trajectories.jsonl run_dir=$OUT/prm-$name \
        epochs=$EPOCHS batch_size=32 optim.lr=$LR log_every=50 "$@"
}
train truth truth                                                   # ceiling: exact labels
train shepherd-hard shepherd prm.threshold=0.01                     # Math-Shepherd hard: some rollout succeeded
train shepherd-hard50 shepherd prm.threshold=0.5                    # hard: most rollouts succeeded
train shepherd-soft shepherd prm.label_type=soft                    # soft: BCE against the MC value
train omegaprm-hard omegaprm prm.threshold=0.01
train omegaprm-soft omegaprm prm.label_type=soft
train implicit truth prm=implicit optim.lr=3e-4                        # outcome labels only (beta 0.05; step labels unused)

# ---------------------------------------------------------------- 3. evaluation on the same held-out set
EVAL="eval_file=$OUT/collect-test/trajectories.jsonl"
for name in truth shepherd-hard shepherd-hard50 shepherd-soft omegaprm-hard omegaprm-soft implicit; do
    $R eval-prm prm_model=$OUT/prm-$name/final $EVAL run_dir=$OUT/eval-$name > /dev/null
done
# the implicit PRM read as a Q-value: sigmoid(beta * log-ratio of everything so far)
$R eval-prm prm_model=$OUT/prm-implicit/final $EVAL run_dir=$OUT/eval-implicit-cumulative \
    prm.implicit_score=cumulative > /dev/null || true

python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = ["truth", "shepherd-hard", "shepherd-hard50", "shepherd-soft", "omegaprm-hard", "omegaprm-soft",
        "implicit", "implicit-cumulative"]
ceiling = json.loads((out / "eval-truth" / "summary.json").read_text())
def f(v):
    return "-" if v is None else f"{v:.3f}"
print("| PRM | step acc | step AUC | first-error F1 @0.5 | (acc err / acc cor) | oracle-threshold F1 | F1 / ceiling | oracle F1 / ceiling |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name in rows:
    path = out / f"eval-{name}" / "summary.json"
    if not path.exists():
        continue
    s = json.loads(path.read_text())
    r1 = s["first_error_f1"] / ceiling["first_error_f1"] if ceiling["first_error_f1"] else None
    r2 = s["best_threshold_f1"] / ceiling["best_threshold_f1"] if ceiling["best_threshold_f1"] else None
    print(f"| {name} | {f(s['step_accuracy'])} | {f(s['step_auc'])} | {f(s['first_error_f1'])} | "
          f"{f(s['acc_erroneous'])} / {f(s['acc_correct'])} | {f(s['best_threshold_f1'])} | {f(r1)} | {f(r2)} |")
EOF
