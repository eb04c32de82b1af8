#!/usr/bin/env bash
# SGLang through the plugin on one CUDA GPU (docs/backends.md, "Which SGLang"), step by step:
#
#   suite     pytest benchmarks --llm-backend sglang on the embedded tiny model, then on the 1.1B
#             reference shape (python -m pytest_llmbench.workload.tinymodel --shape llama-1.1b)
#   server    the same model through --llm-backend openai --llm-server sglang (a managed
#             sglang.launch_server)
#   fidelity  benchmarks/test_sglang_overhead.py at 1 and 64 prompts on the 1.1B shape
#   compare   the cells of ci/gpu/pytorch-reference.sh and ci/gpu/vllm-reference.sh on SGLang:
#             offline throughput at batch 1 and 64 (128 -> 128 tokens), then serving 64
#             requests at concurrency 64 and as Poisson arrivals at 64 req/s, NVML energy
#
# On a CUDA machine with sglang 0.5.16 installed or staged (ci/gpu/stage-sglang.sh), from the
# checkout root:
#   OUT=out STEPS="suite fidelity" bash ci/gpu/sglang-reference.sh   (default: every step)
# Each step writes $OUT/sglang-<step>-*.json and .log; a failed step is reported and the next one
# runs. ENERGY (default nvml) is the meter. SGLANG_SETS holds the sglang settings every step
# uses: by default the prefill CUDA graphs are off, because their capture failed on an H200 with
# sglang 0.5.16 (an open SGLang bug, sgl-project/sglang#37606; docs/backends.md).
set -uo pipefail
export LLMBENCH_CACHE_DIR=${LLMBENCH_CACHE_DIR:-/tmp/llmbench-cache}
OUT=${OUT:-out}
STEPS=${STEPS:-suite server fidelity compare}
read -r -a sets <<< "${SGLANG_SETS:---llm-set sglang.disable_prefill_cuda_graph=true}"
mkdir -p "$OUT"
big=$(python -m pytest_llmbench.workload.tinymodel --shape llama-1.1b | tail -1)
reference=(--llm-config configs/examples/h100-reference.yaml --llm-energy "${ENERGY:-nvml}")
failed=0

run() {  # run NAME PYTEST-ARGS...: one pytest process, its report and log under $OUT
  local name=$1
  shift
  echo "== $name"
  python -m pytest -q -rs -p no:cacheprovider "$@" --llm-json "$OUT/sglang-$name.json" \
    > "$OUT/sglang-$name.log" 2>&1
  local rc=$?
  tail -4 "$OUT/sglang-$name.log"
  if [ "$rc" -ne 0 ]; then
    echo "== $name FAILED (exit $rc): $OUT/sglang-$name.log"
    failed=1
  fi
}

for step in $STEPS; do
  case $step in
    suite)
      run suite-tiny benchmarks --llm-backend sglang "${sets[@]}"
      run suite-1.1b benchmarks --llm-backend sglang --llm-model "$big" "${sets[@]}" ;;
    server)
      # The managed server gets the same sglang settings, as launch_server flags.
      run server benchmarks/test_throughput.py benchmarks/test_latency.py \
        benchmarks/test_serving.py --llm-backend openai --llm-server sglang --llm-model "$big" \
        "${sets[@]}" "${reference[@]}" ;;
    fidelity)
      LLMBENCH_OVERHEAD_PROMPTS=1,64 run fidelity benchmarks/test_sglang_overhead.py -s \
        --llm-backend sglang --llm-model "$big" "${sets[@]}" "${reference[@]}" ;;
    compare)
      for batch in 1 64; do
        run "compare-b$batch" benchmarks/test_throughput.py --llm-backend sglang \
          --llm-model "$big" "${sets[@]}" "${reference[@]}" \
          --llm-set "batching.batch_size=$batch" --llm-set "workload.num_prompts=$batch"
      done
      run compare-c64 benchmarks/test_serving.py --llm-backend sglang --llm-model "$big" \
        "${sets[@]}" "${reference[@]}" --llm-set workload.num_prompts=64 \
        --llm-set traffic_simulation.mode=concurrency --llm-set traffic_simulation.concurrency=64
      run compare-poisson64 benchmarks/test_serving.py --llm-backend sglang --llm-model "$big" \
        "${sets[@]}" "${reference[@]}" --llm-set workload.num_prompts=64 \
        --llm-set traffic_simulation.mode=poisson --llm-set traffic_simulation.request_rate=64 ;;
    *)
      echo "unknown step '$step' (suite, server, fidelity, compare)" >&2
      exit 2 ;;
  esac
done
exit "$failed"
