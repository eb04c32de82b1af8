#!/usr/bin/env bash
# The pytorch backend on the 1.1B reference shape (docs/performance.md). On a CUDA machine, from
# the checkout root, after  pip install -e ".[dev]" :
#   OUT=out bash ci/gpu/pytorch-reference.sh   (writes $OUT/*.json; extra arguments go to pytest)
set -euo pipefail
export LLMBENCH_CACHE_DIR=${LLMBENCH_CACHE_DIR:-/tmp/llmbench-cache}
OUT=${OUT:-out}
mkdir -p "$OUT"
model=$(python -m pytest_llmbench.workload.tinymodel --shape llama-1.1b | tail -1)
extra=("$@")
for preset in pytorch-compatible pytorch-optimized; do
  for batch in 1 64; do
    python -m pytest benchmarks/test_throughput.py -q \
      --llm-backend pytorch --llm-device cuda --llm-model "$model" --llm-preset "$preset" \
      --llm-config configs/examples/h100-reference.yaml \
      --llm-set "batching.batch_size=$batch" --llm-set "workload.num_prompts=$batch" \
      --llm-json "$OUT/pytorch-$preset-b$batch.json" "${extra[@]}" 2>&1 | tail -8
  done
done
