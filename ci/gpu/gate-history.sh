#!/usr/bin/env bash
# Re-runs of a gated command on one GPU machine, each gated against every earlier run (a history),
# as the GPU workflow gates main; then one run beside a GPU load, which the gate must catch.
# Run from the project root on a GPU machine with the project installed (pip install -e .);
# writes $OUT/gate-history-$WORKLOAD.tgz:
#   WORKLOAD=tiny     BUDGET_S=480 bash ci/gpu/gate-history.sh   # the workflow's old command
#   WORKLOAD=gpu-gate BUDGET_S=480 bash ci/gpu/gate-history.sh   # the gpu-gate preset, 1.1B shape
# HISTORY_DIR=DIR continues a history (its *.json are the earlier runs); LOAD=0 skips the load run.
set -uo pipefail
export PYTHONUNBUFFERED=1 LLMBENCH_CACHE_DIR=${LLMBENCH_CACHE_DIR:-/tmp/llmbench-cache}
workload=${WORKLOAD:-tiny}
budget=${BUDGET_S:-480}
rules=${RULES:-energy_per_output_token:+5%,output_throughput:-3%}
out=${OUT:-out}
work=$(mktemp -d)
history=${HISTORY_DIR:-$work/history}
mkdir -p "$history" "$out"
args=(-q -p no:cacheprovider --llm-backend pytorch)
if [ "$workload" = gpu-gate ]; then
  model=$(python -m pytest_llmbench.workload.tinymodel --shape llama-1.1b | tail -1)
  args+=(benchmarks/test_throughput.py --llm-preset gpu-gate --llm-model "$model"
         --llm-min-energy-window 50 --llm-energy nvml)
else
  args+=(benchmarks)
fi
args+=("$@")
smi() { nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader 2>/dev/null || echo no-gpu; }

run_one() {  # run_one NAME [extra args]: one gated run; its report joins the history
  local name=$1; shift
  local gate=()
  if compgen -G "$history/*.json" > /dev/null; then
    gate=(--llm-compare "$history" --llm-fail-on "$rules")
  fi
  local before; before=$(smi); SECONDS=0
  timeout 400 python -m pytest "${args[@]}" --llm-json "$work/$name.json" "${gate[@]}" "$@" \
    > "$work/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc ${SECONDS}s gpu-before: $before | $(grep -E 'llmbench gate (passed|FAILED)' "$work/$name.log" | tail -1 | cut -c1-160)" \
    | tee -a "$work/summary.log"
  return $rc
}

start=$(date +%s)
i=$(find "$history" -name '*.json' | wc -l)
while [ $(( $(date +%s) - start )) -lt "$budget" ]; do
  name=$(printf 'run%03d' "$i")
  run_one "$name"
  [ -f "$work/$name.json" ] && cp "$work/$name.json" "$history/$name.json"
  i=$((i + 1))
done
if [ "${LOAD:-1}" = 1 ]; then
  python - <<'PY' > "$work/load.log" 2>&1 &
import torch, time
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 600
while time.time() < end:
    for _ in range(50):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()
PY
  load=$!
  sleep 5
  run_one loaded
  kill "$load" 2>/dev/null; wait "$load" 2>/dev/null
fi
tar czf "$out/gate-history-$workload.tgz" -C "$work" .
