#!/usr/bin/env bash
# PRMs on the arithmetic gym, judged against the ground-truth step checker (docs/prm.md).
#
# 1. collect: the SFT'd gym policy samples N solutions for each of N_TRAIN training problems;
#    the SAME samples are labelled three ways (exact truth, Math-Shepherd MC, OmegaPRM MC).
#    N solutions for each of N_TEST held-out problems get ground-truth labels (the test set),
#    and so do N_VAL more training-split problems, disjoint from the training ones (validation).
# 2. train-prm: discriminative PRMs on truth (the ceiling), on Shepherd and on OmegaPRM labels
#    (hard at "> 0" as Math-Shepherd defines it, hard at 0.5, and soft), and an implicit PRM
#    from outcomes only. Same init (the policy), same recipe for all.
# 3. eval-prm: every PRM on the same test set. First-error F1 at a fixed 0.5 threshold mostly
#    measures calibration (PRMs trained on ~80%-wrong samples score low everywhere), so each PRM
#    also gets the threshold that maximises F1 on the validation set, applied unchanged to the
#    test set; the oracle (best-on-test) F1 is shown as an upper bound. A markdown table at the end.
# Every stage is skipped when its output exists, so a re-run continues where it stopped.
#
# Usage: bash scripts/exp_prm.sh     (env: POLICY, OUT, N_TRAIN, N_TEST, N_VAL, N, EPOCHS, LR)
# Needs runs/gym-sft/final (bash scripts/quickstart.sh, or reasoner train-sft run_dir=runs/gym-sft).
set -euo pipefail
cd "$(dirname "$0")/.."

POLICY=${POLICY:-runs/gym-sft/final}
OUT=${OUT:-runs/exp-prm}
N_TRAIN=${N_TRAIN:-500}     # training problems
N_TEST=${N_TEST:-200}       # held-out (test split) problems
N_VAL=${N_VAL:-200}         # validation problems (threshold choice)
N=${N:-4}                   # samples per problem
EPOCHS=${EPOCHS:-4}
LR=${LR:-1e-3}
# one thread per process: on a small shared CPU two threads per process oversubscribe the cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
R="nice -n 10 python -m reasoner"

[ -d "$POLICY" ] || { echo "policy $POLICY not found: train it first (scripts/quickstart.sh)" >&2; exit 2; }

# ---------------------------------------------------------------- 1. data (collect resumes / skips finished runs)
COLLECT="model=$POLICY data.split=train data.num_problems=$N_TRAIN n=$N max_tokens=64"
$R collect $COLLECT labels=truth run_dir=$OUT/collect-truth
$R collect $COLLECT labels=shepherd labels.rollouts=8 run_dir=$OUT/collect-shepherd
$R collect $COLLECT labels=omegaprm labels.rollouts=8 labels.budget=56 run_dir=$OUT/collect-omegaprm
$R collect model=$POLICY data.split=test data.num_problems=$N_TEST n=$N max_tokens=64 generation.seed=1 \
    labels=truth run_dir=$OUT/collect-test
# validation: problems N_TRAIN .. N_TRAIN+N_VAL-1 of the training-split sequence (ids arith-train-0-<i>)
$R collect model=$POLICY data.split=train data.num_problems=$((N_TRAIN + N_VAL)) n=$N max_tokens=64 \
    generation.seed=2 labels=truth run_dir=$OUT/collect-trainval
python - "$OUT" "$N_TRAIN" <<'PY'
import json, sys
from pathlib import Path
out, n_train = Path(sys.argv[1]), int(sys.argv[2])
rows = [line for line in (out / "collect-trainval" / "trajectories.jsonl").read_text().splitlines()
        if int(json.loads(line)["problem_id"].rsplit("-", 1)[1]) >= n_train]
(out / "val.jsonl").write_text("".join(r + "\n" for r in rows))
PY

# ---------------------------------------------------------------- 2. PRMs
train() {  # name, label source, extra overrides...
    local name=$1 source=$2
    shift 2
    [ -f "$OUT/prm-$name/final/prm.json" ] && return 0
    $R train-prm model=$POLICY train_file=$OUT/collect-$source/trajectories.jsonl run_dir=$OUT/prm-$name \
        epochs=$EPOCHS batch_size=32 optim.lr=$LR log_every=50 "$@"
}
train truth truth                                        # ceiling: exact labels
train shepherd-hard shepherd prm.threshold=0.01          # Math-Shepherd hard: some rollout succeeded
train shepherd-hard50 shepherd prm.threshold=0.5         # hard: most rollouts succeeded
train shepherd-soft shepherd prm.label_type=soft         # soft: BCE against the MC value
train omegaprm-hard omegaprm prm.threshold=0.01
train omegaprm-soft omegaprm prm.label_type=soft
train implicit truth prm=implicit optim.lr=3e-4          # outcome labels only (beta 0.05; step labels unused)

# ---------------------------------------------------------------- 3. evaluation on the same test set
evaluate() {  # name, PRM dir, extra overrides...
    local name=$1 dir=$2 t
    shift 2
    [ -f "$OUT/val-$name/summary.json" ] || \
        $R eval-prm prm_model=$dir eval_file=$OUT/val.jsonl run_dir=$OUT/val-$name "$@" > /dev/null
    t=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['best_threshold'])" "$OUT/val-$name/summary.json")
    [ -f "$OUT/eval-$name/summary.json" ] || \
        $R eval-prm prm_model=$dir eval_file=$OUT/collect-test/trajectories.jsonl run_dir=$OUT/eval-$name "$@" > /dev/null
    [ -f "$OUT/evalt-$name/summary.json" ] || \
        $R eval-prm prm_model=$dir eval_file=$OUT/collect-test/trajectories.jsonl run_dir=$OUT/evalt-$name \
            score_threshold="$t" "$@" > /dev/null
}
for name in truth shepherd-hard shepherd-hard50 shepherd-soft omegaprm-hard omegaprm-soft implicit; do
    evaluate $name $OUT/prm-$name/final
done
# the implicit PRM read as a Q-value: sigmoid(beta * log-ratio of everything so far)
evaluate implicit-cumulative $OUT/prm-implicit/final prm.implicit_score=cumulative

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = ["truth", "shepherd-hard", "shepherd-hard50", "shepherd-soft", "omegaprm-hard", "omegaprm-soft",
        "implicit", "implicit-cumulative"]

def load(kind, name):
    return json.loads((out / f"{kind}-{name}" / "summary.json").read_text())

def f(v):
    return "-" if v is None else f"{v:.3f}"

def ratio(a, b):
    return None if a is None or not b else a / b

ceil_t, ceil_o = load("evalt", "truth")["first_error_f1"], load("eval", "truth")["best_threshold_f1"]
print("| PRM | step acc | step AUC | F1 @0.5 (acc err / cor) | val threshold | F1 @val threshold (acc err / cor) "
      "| oracle F1 | F1@val / ceiling | oracle / ceiling |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name in rows:
    if not (out / f"evalt-{name}" / "summary.json").exists():
        continue
    e, t = load("eval", name), load("evalt", name)
    print(f"| {name} | {f(e['step_accuracy'])} | {f(e['step_auc'])} | {f(e['first_error_f1'])} "
          f"({f(e['acc_erroneous'])} / {f(e['acc_correct'])}) | {f(t['score_threshold'])} | {f(t['first_error_f1'])} "
          f"({f(t['acc_erroneous'])} / {f(t['acc_correct'])}) | {f(e['best_threshold_f1'])} | "
          f"{f(ratio(t['first_error_f1'], ceil_t))} | {f(ratio(e['best_threshold_f1'], ceil_o))} |")
PY
