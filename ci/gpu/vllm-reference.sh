#!/usr/bin/env bash
# vLLM through the plugin on the 1.1B reference shape (docs/performance.md): offline throughput at
# 1, 8 and 64 prompts (one engine for all), energy per output token, and the harness overhead.
# On a CUDA machine, from the checkout root, after  pip install -e ".[dev]" vllm==0.26.0 :
#   OUT=out bash ci/gpu/vllm-reference.sh   (extra arguments go to pytest)
set -euo pipefail
export LLMBENCH_CACHE_DIR=${LLMBENCH_CACHE_DIR:-/tmp/llmbench-cache}
OUT=${OUT:-out}
mkdir -p "$OUT"
model=$(python -m pytest_llmbench.workload.tinymodel --shape llama-1.1b | tail -1)
python -m pytest -q -s \
  benchmarks/test_throughput.py benchmarks/test_vllm_overhead.py \
  --llm-backend vllm --llm-model "$model" --llm-config configs/examples/h100-reference.yaml \
  --llm-set "workload.num_prompts_sweep=[1,8,64]" \
  --llm-json "$OUT/vllm-reference.json" "$@"
