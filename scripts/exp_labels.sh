#!/usr/bin/env bash
# Step labels on the gym: Math-Shepherd vs OmegaPRM at an equal rollout budget, both judged
# against the gym's ground-truth step checker (docs/benchmarks.md, "Collect: step labels on the gym").
#
#   bash scripts/exp_labels.sh                 # 500 held-out problems, n=16, k=8
#   PROBLEMS=48 bash scripts/exp_labels.sh     # a quick look
#
# Both runs use the same model, problems, seeds and chunking, so they draw the same 16 samples per
# problem and differ only in the labels. OmegaPRM's per-problem budget is Shepherd's mean spend per
# problem (rounded to a multiple of k). Needs the SFT'd gym model (MODEL, default runs/gym-sft/final).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-runs/gym-sft/final}
OUT=${OUT:-runs/exp-labels}
PROBLEMS=${PROBLEMS:-500}
K=${K:-8}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread per process: far faster on a shared CPU
common=(model="$MODEL" data.split=test data.num_problems="$PROBLEMS" n=16 temperature=1.0 max_tokens=64
        problems_per_chunk=16 labels.rollouts="$K")

nice -n 10 python -m reasoner collect "${common[@]}" labels=shepherd run_dir="$OUT/shepherd"
BUDGET=$(python -c "import json; s = json.load(open('$OUT/shepherd/summary.json')); print(max($K, round(s['rollouts'] / s['problems'] / $K) * $K))")
echo "OmegaPRM budget per problem: $BUDGET rollouts"
nice -n 10 python -m reasoner collect "${common[@]}" labels=omegaprm labels.budget="$BUDGET" run_dir="$OUT/omegaprm"

python - "$OUT/shepherd/summary.json" "$OUT/omegaprm/summary.json" <<'PY' | tee "$OUT/table.md"
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
def get(s, path):
    for key in path.split("."):
        s = s.get(key) if isinstance(s, dict) else None
    return s
rows = [
    ("problems / samples", lambda s: f"{s['problems']} / {s['samples']}"),
    ("sample accuracy (pass@1)", lambda s: s["accuracy"]),
    ("wall time, s", lambda s: s["wall_s"]),
    ("generated tokens (samples + labels)", lambda s: s["sample_tokens"] + s["label_tokens"]),
    ("tokens/s", lambda s: s["tokens_per_s"]),
    ("label rollouts spent (per problem)", lambda s: f"{s['rollouts']} ({s['rollouts'] / s['problems']:.1f})"),
    ("records written", lambda s: s["records"]),
    ("labelled steps (of which estimated)", lambda s: f"{get(s, 'label_stats.labelled_steps')} ({get(s, 'label_stats.estimated_steps')})"),
    ("fully labelled trajectories", lambda s: get(s, "label_stats.fully_labelled_trajectories")),
    ("unique prefixes estimated (k rollouts each)", lambda s: get(s, "label_stats.unique_estimated_prefixes")),
    ("estimated step labels per 100 rollouts", lambda s: get(s, "label_stats.estimated_steps_per_100_rollouts")),
    ("hard-label positive rate", lambda s: get(s, "label_stats.positive_rate")),
    ("mean soft label", lambda s: get(s, "label_stats.mean_soft_label")),
    ("agreement with truth: unique prefixes", lambda s: get(s, "label_stats.agreement.unique_estimated_prefixes")),
    ("agreement with truth: estimated steps", lambda s: get(s, "label_stats.agreement.estimated_steps")),
    ("agreement with truth: all labelled steps", lambda s: get(s, "label_stats.agreement.all_labelled_steps")),
    ("  truly wrong steps labelled 0 (recall)", lambda s: get(s, "label_stats.agreement.wrong_step_recall")),
    ("  truly right steps labelled >0 (recall)", lambda s: get(s, "label_stats.agreement.right_step_recall")),
    ("  of them agreeing with truth, per 100 rollouts", lambda s: get(s, "label_stats.agreement.correct_estimated_steps_per_100_rollouts")),
    ("first error pinned (trajectories)", lambda s: get(s, "label_stats.agreement.first_error.located")),
    ("  pinned at the true first error", lambda s: get(s, "label_stats.agreement.first_error.located_precision")),
    ("  wrong solutions whose first error is found", lambda s: get(s, "label_stats.agreement.first_error.recall")),
    ("true first errors found per 100 rollouts", lambda s: get(s, "label_stats.agreement.first_errors_found_per_100_rollouts")),
]
print("| | Math-Shepherd | OmegaPRM |")
print("|---|---:|---:|")
for name, fn in rows:
    print(f"| {name} | " + " | ".join(str(fn(s)) for s in runs) + " |")
PY

# The same 8000 samples under both methods (OmegaPRM's extra search records left out).
python - "$OUT/shepherd/trajectories.jsonl" "$OUT/omegaprm/trajectories.jsonl" <<'PY' | tee -a "$OUT/table.md"
import sys
from reasoner.data import read_trajectories
from reasoner.labeling.stats import located_first_error, true_first_error
sh, om = (read_trajectories(p) for p in sys.argv[1:])
samples = [t for t in om if t.meta.get("origin") == "sample"]
search = [t for t in om if t.meta.get("origin") == "search"]
by_id = {t.id: t for t in sh}
both = ok_sh = ok_om = 0
for t in samples:
    u = by_id[t.id]
    for i, v in enumerate(t.step_labels):
        if v is not None and t.meta["mc_rollouts"][i]:
            truth = t.meta["true_step_labels"][i]
            both += 1
            ok_sh += (u.step_labels[i] > 0) == truth
            ok_om += (v > 0) == truth
wrong = [t for t in samples if true_first_error(t.meta["true_step_labels"]) is not None]
found = {name: sum(located_first_error(r.step_labels) == true_first_error(r.meta["true_step_labels"]) for r in recs)
         for name, recs in (("sh", [by_id[t.id] for t in wrong]), ("om", wrong))}
searched = [t for t in samples if t.meta.get("first_error") is not None]
hit = sum(t.meta["first_error"] == true_first_error(t.meta["true_step_labels"]) for t in searched)
print()
print("| on the same samples | Math-Shepherd | OmegaPRM |")
print("|---|---:|---:|")
print(f"| sample steps with an estimated label | {sum(1 for t in sh for i, v in enumerate(t.step_labels) if t.meta['mc_rollouts'][i])} | "
      f"{sum(1 for t in samples for i, v in enumerate(t.step_labels) if v is not None and t.meta['mc_rollouts'][i])} |")
print(f"| steps both estimated ({both}): agreement with truth | {ok_sh / both:.4f} | {ok_om / both:.4f} |")
print(f"| wrong samples ({len(wrong)}) whose first error the labels pin correctly | {found['sh'] / len(wrong):.4f} | {found['om'] / len(wrong):.4f} |")
print(f"| OmegaPRM binary searches on samples: at the true first error | - | {hit}/{len(searched)} = {hit / max(1, len(searched)):.4f} |")
print(f"| OmegaPRM search records (wrong rollouts of inner states) | - | {len(search)} |")
PY
