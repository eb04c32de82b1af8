#!/usr/bin/env bash
# The pytorch backend against transformers' generate by hand, on the 1.1B reference shape
# (docs/performance.md, "Harness overhead on transformers"). On a CUDA machine, from the checkout
# root, after  pip install -e ".[dev]" :
#   OUT=out bash ci/gpu/pytorch-overhead.sh     (writes $OUT/*.json and *.log; extra args go to pytest)
# Per preset and batch: benchmarks/test_pytorch_overhead.py (both paths interleaved, same model),
# and for pytorch-optimized also the offline throughput benchmark, whose result's engine details
# say whether CUDA graphs ran. PRESETS and BATCHES narrow the sweep.
set -uo pipefail
export PYTHONUNBUFFERED=1 LLMBENCH_CACHE_DIR=${LLMBENCH_CACHE_DIR:-/tmp/llmbench-cache}
export LLMBENCH_OVERHEAD_ROUNDS=${LLMBENCH_OVERHEAD_ROUNDS:-4}
OUT=${OUT:-out}
mkdir -p "$OUT"
model=$(python -m pytest_llmbench.workload.tinymodel --shape llama-1.1b | tail -1)
for preset in ${PRESETS:-pytorch-optimized pytorch-compatible}; do
  for batch in ${BATCHES:-1 64}; do
    tests=(benchmarks/test_pytorch_overhead.py)
    [ "$preset" = pytorch-optimized ] && tests+=(benchmarks/test_throughput.py)
    name="$preset-b$batch"
    start=$(date +%s)
    python -m pytest "${tests[@]}" -q -s -p no:cacheprovider \
      --llm-backend pytorch --llm-device cuda --llm-model "$model" --llm-preset "$preset" \
      --llm-config configs/examples/h100-reference.yaml \
      --llm-set "batching.batch_size=$batch" --llm-set "workload.num_prompts=$batch" \
      --llm-json "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1
    echo "== $name: exit $? in $(( $(date +%s) - start )) s"
    grep -E "harness overhead:|skipping cudagraphs|passed|failed|Error" "$OUT/$name.log" | cut -c1-600 | head -8
  done
done
