#!/usr/bin/env bash
# Choose the gate workload by measurement, then re-run it as CI would, then beside a GPU load.
# Run from the project root on a GPU machine with the project installed (pip install -e .).
# Every run is one pytest process (fresh compile state, as a CI job), gated
# against the earlier runs of the same candidate; reports land in $STATE/<candidate>/.
#
#   1. candidates: ROUNDS rounds over CANDIDATES, round-robin (so drift hits every candidate alike)
#   2. re-runs:    the steadiest candidate (ci/gpu/gate_workloads.py --winner, or $WINNER) again
#                  until BUDGET_S seconds have passed since the start
#   3. loads:      one run per duty cycle in LOADS beside a process that keeps the GPU busy that
#                  share of the time (bf16 matmuls, then sleep), each gated against the history
#
#   ROUNDS=2 BUDGET_S=480 LOADS="" bash ci/gpu/gate-workloads.sh          # first call
#   ROUNDS=0 BUDGET_S=420 LOADS="0.05 0.10" bash ci/gpu/gate-workloads.sh # next calls continue
#
# $STATE (default /tmp/llmbench-gate) survives between calls on one machine; the whole state is
# also packed into $OUT/gate-state.tgz, and a state.tgz under $RESTORE is unpacked when $STATE is
# missing (a fresh machine). The table of candidates goes to $OUT/candidates.md.
set -uo pipefail
export PYTHONUNBUFFERED=1 LLMBENCH_CACHE_DIR=${LLMBENCH_CACHE_DIR:-/tmp/llmbench-cache}
start=$(date +%s)
budget=${BUDGET_S:-480}
rounds=${ROUNDS:-2}
candidates=${CANDIDATES:-"l8b-b128 l8b-b64 l11b-b128"}
rules=${RULES:-energy_per_output_token:+3%,output_throughput:-3%}
window=${WINDOW:-30}
energy=${ENERGY:-nvml}
out=${OUT:-out}
state=${STATE:-/tmp/llmbench-gate}
mkdir -p "$out"
if [ ! -d "$state" ] && [ -f "${RESTORE:-.gpu-state}/gate-state.tgz" ]; then
  mkdir -p "$state" && tar xzf "${RESTORE:-.gpu-state}/gate-state.tgz" -C "$state"
fi
mkdir -p "$state"
log="$state/summary.log"

declare -A built=()
model() {  # model SHAPE: build once (cached on disk), print the path
  [ -n "${built[$1]:-}" ] || built[$1]=$(python -m pytest_llmbench.workload.tinymodel --shape "$1" | tail -1)
  echo "${built[$1]}"
}

cand_args() {  # cand_args NAME: sets CAND_ARGS, the pytest arguments of a candidate workload
  # NAME = SHAPE-bBATCH[-oOUTPUT_TOKENS][-nofreeze], e.g. l8b-b128, l8b-b256-o512, l8b-b128-nofreeze
  local shape batch part rest
  case $1 in
    tiny-b*) shape=tiny ;;
    l11b-b*) shape=llama-1.1b ;;
    l8b-b*) shape=llama-8b ;;
    *) echo "unknown candidate $1" >&2; return 1 ;;
  esac
  rest=${1#*-b}
  batch=${rest%%-*}
  model "$shape" > /dev/null  # in this shell, so the path is remembered
  CAND_ARGS=(--llm-model "${built[$shape]}" --llm-set "batching.batch_size=$batch"
             --llm-set "workload.num_prompts=$batch")
  while [ "$rest" != "${rest#*-}" ]; do
    rest=${rest#*-}
    part=${rest%%-*}
    case $part in
      o[0-9]*) CAND_ARGS+=(--llm-set "max_output_tokens=${part#o}") ;;
      nofreeze) CAND_ARGS+=(--llm-set runner.freeze_gc=false) ;;
      *) echo "unknown part '$part' of candidate $1" >&2; return 1 ;;
    esac
  done
}

smi() { nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader 2>/dev/null | head -1 || echo no-gpu; }

last=60
failed=0
run_one() {  # run_one CANDIDATE NAME: one gated run; its report joins the candidate's history
  local cand=$1 name=$2 dir="$state/$1"
  mkdir -p "$dir"
  local left=$(( budget - ($(date +%s) - start) ))
  if [ "$left" -lt $(( last * 13 / 10 )) ]; then
    echo "skip $cand/$name: ${left}s left, last run took ${last}s" | tee -a "$log"
    return 1
  fi
  local gate=()
  if compgen -G "$dir/run*.json" > /dev/null; then
    gate=(--llm-compare "$dir/run*.json" --llm-fail-on "$rules")
  fi
  cand_args "$cand" || return 2
  local args=(-q -p no:cacheprovider benchmarks/test_throughput.py --llm-backend pytorch
              --llm-preset gpu-gate --llm-min-energy-window "$window" --llm-energy "$energy"
              "${CAND_ARGS[@]}")
  local before; before=$(smi); local t0; t0=$(date +%s)
  timeout "$left" python -m pytest "${args[@]}" "${EXTRA[@]}" --llm-json "$dir/$name.json" \
    "${gate[@]}" > "$dir/$name.log" 2>&1
  local rc=$?
  last=$(( $(date +%s) - t0 ))
  if [ ! -f "$dir/$name.json" ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 11 ]; }; then
    echo "$cand/$name FAILED rc=$rc after ${last}s: stopping (see $name.log)" | tee -a "$log"
    tail -5 "$dir/$name.log" | tee -a "$log"
    failed=1
    return 2
  fi
  echo "$cand/$name rc=$rc ${last}s gpu-before: $before | $(grep -E 'llmbench gate (passed|FAILED)' "$dir/$name.log" | tail -1 | cut -c1-200)" \
    | tee -a "$log"
  grep -E '^  (regression|not measured):' "$dir/$name.log" | tee -a "$log"
  return 0
}

next_name() {  # next_name DIR: run000, run001, ...
  printf 'run%03d' "$(find "$1" -maxdepth 1 -name 'run*.json' 2>/dev/null | wc -l)"
}

EXTRA=()
[ -n "${EXTRA_ARGS:-}" ] && read -r -a EXTRA <<< "$EXTRA_ARGS"

for _ in $(seq 1 "$rounds"); do
  for cand in $candidates; do
    mkdir -p "$state/$cand"
    run_one "$cand" "$(next_name "$state/$cand")" || break 2
  done
done
dirs=()
for cand in $candidates; do [ -d "$state/$cand" ] && dirs+=("$state/$cand"); done
if [ "${#dirs[@]}" -gt 0 ]; then
  python ci/gpu/gate_workloads.py "${dirs[@]}" | tee "$out/candidates.md"
  winner=${WINNER:-$(python ci/gpu/gate_workloads.py --winner "${dirs[@]}")}
  winner=${winner:-${candidates%% *}}
else
  winner=${WINNER:?no candidate has run: set WINNER}
fi
echo "winner: $winner" | tee -a "$log"

loads=${LOADS:-}
reserve=0
for _ in $loads; do reserve=$(( reserve + last + 10 )); done
while [ "$failed" = 0 ] && [ $(( budget - reserve - ($(date +%s) - start) )) -gt $(( last * 13 / 10 )) ]; do
  run_one "$winner" "$(next_name "$state/$winner")" || break
done

for duty in $loads; do
  [ "$failed" = 0 ] || break
  python - "$duty" > "$state/$winner/load-$duty.log" 2>&1 <<'PY' &
import sys, time
import torch
duty = float(sys.argv[1])
a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
end = time.time() + 900
while time.time() < end:
    t = time.perf_counter()
    for _ in range(20):
        b = a @ a
    torch.cuda.synchronize()
    busy = time.perf_counter() - t
    time.sleep(busy * (1.0 / duty - 1.0))  # busy `duty` of the time
PY
  load=$!
  sleep 3
  run_one "$winner" "loaded-$duty"
  kill "$load" 2>/dev/null; wait "$load" 2>/dev/null
done

python ci/gpu/gate_workloads.py "$state/$winner" >> "$log"
tar czf "$out/gate-state.tgz" -C "$state" .
cp "$log" "$out/summary.log"
