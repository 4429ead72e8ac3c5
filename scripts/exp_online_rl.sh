#!/usr/bin/env bash
# Online RL on the arith gym: GRPO, RLOO, PPO, PRIME, RLEP from the same SFT checkpoint, equal
# rollout budget (STEPS x PROMPTS x N fresh samples), SEEDS seeds each; held-out greedy accuracy
# every EVAL_EVERY steps on EVAL_N test problems. Writes runs/rl-online/*, docs/rl/online_curves.png
# and docs/rl/online_results.md (the table docs/rl.md quotes).
# RLEP's pool is the verified-correct rollouts (pool.jsonl) of the GRPO run with the same seed
# (the paper's phase 1 = an earlier run on the same prompts).
# Usage: nice -n 10 bash scripts/exp_online_rl.sh   (env: STEPS PROMPTS N EVAL_EVERY EVAL_N SEEDS LR PRM_LR PAR MAXTOK)
set -euo pipefail
cd "$(dirname "$0")/.."
SFT=${SFT:-runs/gym-sft/final}
OUT=${OUT:-runs/rl-online}
STEPS=${STEPS:-16}; PROMPTS=${PROMPTS:-4}; N=${N:-8}; EVAL_EVERY=${EVAL_EVERY:-4}; EVAL_N=${EVAL_N:-100}
SEEDS=${SEEDS:-"0 1 2"}; LR=${LR:-1e-4}; PAR=${PAR:-2}; MAXTOK=${MAXTOK:-64}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT" docs/rl
COMMON="model=$SFT data.num_problems=2000 steps=$STEPS prompts_per_step=$PROMPTS generation.n=$N
 generation.max_new_tokens=$MAXTOK generation.batch_size=64 batch_size=32 eval_every=$EVAL_EVERY eval_problems=$EVAL_N
 save_every=8 optim.lr=$LR"

run() {  # name seed extra...
  local name=$1 seed=$2; shift 2
  local dir="$OUT/$name-s$seed"
  if [[ -f "$dir/summary.json" ]]; then echo "skip $dir (done)"; return 0; fi
  echo "[$(date +%T)] start $dir"
  python -m reasoner train-rl $COMMON seed=$seed generation.seed=$seed run_dir="$dir" "$@" > "$OUT/$name-s$seed.log" 2>&1 \
    || { echo "FAILED $dir (see $OUT/$name-s$seed.log)"; return 0; }
  echo "[$(date +%T)] done $dir"
}

job() {  # "algo seed": one run; RLEP first waits for the GRPO run of its seed (its pool)
  local algo=$1 seed=$2
  case $algo in
    prime) run prime "$seed" algo=prime algo.prm_lr=${PRM_LR:-$LR} ;;
    rlep)
      while [[ ! -f "$OUT/grpo-s$seed/summary.json" ]]; do
        [[ -f "$OUT/grpo-s$seed.log" ]] && grep -q "^error" "$OUT/grpo-s$seed.log" && { echo "no pool for rlep-s$seed"; return 0; }
        sleep 10
      done
      run rlep "$seed" algo=rlep algo.pool_file="$OUT/grpo-s$seed/pool.jsonl" ;;
    *) run "$algo" "$seed" algo="$algo" ;;
  esac
}
export -f run job
export OUT COMMON LR

# step-0 accuracy of the SFT model on the same held-out problems (greedy)
if [[ ! -f "$OUT/sft-eval/summary.json" ]]; then
  python -m reasoner decode model=$SFT data.split=test data.num_problems=2000 data.limit=$EVAL_N \
    generation.max_new_tokens=$MAXTOK run_dir="$OUT/sft-eval" > "$OUT/sft-eval.log" 2>&1
fi

# PAR runs at a time, seed by seed; GRPO of a seed is queued before the RLEP run that replays its pool
for seed in $SEEDS; do
  for algo in grpo rloo ppo prime rlep; do echo "$algo $seed"; done
done | xargs -P "$PAR" -L 1 bash -c 'job "$0" "$1"'

python - "$OUT" <<'PY'
import json, sys, statistics as st
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out = Path(sys.argv[1])
base = json.loads((out / "sft-eval" / "summary.json").read_text())["accuracy"]
algos = ["grpo", "rloo", "ppo", "prime", "rlep"]
curves = {}
for a in algos:
    runs = []
    for d in sorted(out.glob(f"{a}-s*")):
        if not d.is_dir() or not (d / "metrics.jsonl").exists():
            continue
        recs = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
        pts = [(0, 0, base)] + [(r["step"], r["rollouts"], r["eval_accuracy"]) for r in recs if "eval_accuracy" in r]
        runs.append(pts)
    if runs:
        curves[a] = runs
fig, ax = plt.subplots(figsize=(7, 4.5))
rows = []
for a, runs in curves.items():
    n = min(len(r) for r in runs)
    xs = [runs[0][i][1] for i in range(n)]
    means = [st.mean(r[i][2] for r in runs) for i in range(n)]
    sds = [st.pstdev([r[i][2] for r in runs]) for i in range(n)]
    ax.plot(xs, [100 * m for m in means], marker="o", label=f"{a} ({len(runs)} seeds)")
    ax.fill_between(xs, [100 * (m - s) for m, s in zip(means, sds)], [100 * (m + s) for m, s in zip(means, sds)], alpha=0.15)
    peak_i = max(range(n), key=lambda i: means[i])
    rows.append((a, len(runs), means, xs, [r[n - 1][2] for r in runs], peak_i))
ax.axhline(100 * base, color="grey", ls="--", lw=1, label="SFT")
ax.set_xlabel("rollouts (fresh samples)"); ax.set_ylabel("held-out greedy accuracy (%)")
ax.set_title("Online RL on the arith gym from the SFT checkpoint"); ax.legend(); ax.grid(alpha=0.3)
fig.tight_layout(); fig.savefig("docs/rl/online_curves.png", dpi=120)
lines = [f"SFT start: {100 * base:.1f}% on the same held-out problems.", "",
         "| algo | seeds | final acc (mean ± sd) | per-seed final | peak mean acc (at rollouts) | Δ final vs SFT |",
         "|---|---|---|---|---|---|"]
for a, k, means, xs, finals, pi in rows:
    lines.append(f"| {a} | {k} | {100 * st.mean(finals):.1f} ± {100 * st.pstdev(finals):.1f} | "
                 f"{', '.join(f'{100 * f:.1f}' for f in finals)} | {100 * means[pi]:.1f} ({xs[pi]}) | {100 * (st.mean(finals) - base):+.1f} |")
lines += ["", "Mean accuracy at each evaluation point (rollouts: accuracy %):", ""]
for a, k, means, xs, finals, pi in rows:
    lines.append(f"- {a}: " + ", ".join(f"{x}: {100 * m:.1f}" for x, m in zip(xs, means)))
# goals of the issue, from the seed means
def first_reach(xs, means, target):
    return next((x for x, m in zip(xs, means) if m >= target - 1e-9), None)

by = {a: (xs, means, finals) for a, k, means, xs, finals, pi in rows}
goal = ["", "Goals (from the seed means):", ""]
if "grpo" in by:
    gx, gm, gf = by["grpo"]
    g_final, g_peak = st.mean(gf), max(gm)
    g_peak_x = gx[gm.index(g_peak)]
    goal.append(f"- GRPO final {100 * g_final:.1f}% vs SFT {100 * base:.1f}%: {100 * (g_final - base):+.1f} points (goal >= +15): "
                + ("met" if g_final - base >= 0.15 else "not met"))
    if "prime" in by:
        px, pm, _ = by["prime"]
        reach = first_reach(px[1:], pm[1:], g_final)
        goal.append(f"- PRIME reaches GRPO's final {100 * g_final:.1f}% at "
                    + (f"{reach} rollouts vs GRPO's {gx[-1]} ({reach / gx[-1]:.2f}x; goal <= 0.5x): " + ("met" if reach <= gx[-1] / 2 else "not met") + (" (vacuous: GRPO ended below the SFT start)" if g_final <= base else "")
                       if reach else "no evaluation point: not met"))
    if "rlep" in by:
        rx, rm, _ = by["rlep"]
        reach = first_reach(rx[1:], rm[1:], g_peak)
        goal.append(f"- RLEP reaches GRPO's peak {100 * g_peak:.1f}% (GRPO: at {g_peak_x} rollouts) at "
                    + (f"{reach} rollouts: " + ("met" if reach < g_peak_x else "not met (not fewer)") if reach else "no evaluation point: not met"))
lines += goal
Path("docs/rl/online_results.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
