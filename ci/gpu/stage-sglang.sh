#!/usr/bin/env bash
# Stage SGLang 0.5.16 for an offline NVIDIA Hopper (sm_90) machine whose image already has
# Python 3.12 and torch 2.11.0+cu130 (the torch sglang 0.5.16 pins; see
# ci/gpu/sglang-0.5.16-requirements.txt for what the image must hold and what is staged).
#
# Run on a machine with network access, from anywhere in the project:
#
#   bash ci/gpu/stage-sglang.sh
#
# It downloads the pinned wheels (pip download --no-deps, CPython 3.12 / manylinux x86-64),
# installs them with `pip install --no-deps --target` into two folders, SGLang's and flashinfer's,
# drops what a Hopper GPU never loads (listed below), packs SGLang's folder as one xz-compressed tar
# cut into parts, and flashinfer's as flashinfer.tgz, under .gpu-carry/ (git-ignored):
#
#   .gpu-carry/sglang.part00 .. sglang.partNN   tar | xz, split; concatenate in order to unpack
#   .gpu-carry/flashinfer.tgz                   flashinfer-python 0.6.14 + cuda-tile +
#                                               nvidia-cudnn-frontend: the same three packages as
#                                               the vLLM 0.26.0 staging's flashinfer part, so one
#                                               copy serves both engines
#   .gpu-carry/sglang.sha256                    checksums of all of the above
#
# On any offline GPU machine (copy .gpu-carry/ there by any means), install the image's wheels
# (transformers 5.12.1, sglang's pin, replacing the image's 5.17.0, which breaks sglang 0.5.16's
# import), unpack, and register the two folders with the Python that holds torch (a .pth file in
# its site-packages adds them to sys.path, for every process it starts):
#
#   sha256sum -c sglang.sha256
#   python3 -m pip install --no-deps --no-index ./*.whl
#   mkdir -p /opt/sglang-0.5.16 /opt/flashinfer-0.6.14
#   cat sglang.part* | xz -dc | tar -xf - -C /opt/sglang-0.5.16
#   tar -xzf flashinfer.tgz -C /opt/flashinfer-0.6.14
#   purelib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
#   printf '%s\n' /opt/sglang-0.5.16 /opt/flashinfer-0.6.14 > "$purelib/sglang-0.5.16-staged.pth"
#   python3 -c 'import sglang, sgl_kernel, flashinfer, transformers; print(sglang.__version__, transformers.__version__)'
#   pytest benchmarks --llm-backend sglang --llm-set sglang.disable_prefill_cuda_graph=true
#
# (Without xz: cat sglang.part* | python3 -c 'import sys, tarfile;
#  tarfile.open(fileobj=sys.stdin.buffer, mode="r|xz").extractall(sys.argv[1])' /opt/sglang-0.5.16)
# SGLang and vLLM pin different versions of packages both use (openai, xgrammar, apache-tvm-ffi,
# pydantic): register one engine's folder at a time (delete the .pth file to switch); the
# flashinfer folder serves both.
#
# Where each transfer to the GPU machine is limited (64 MiB, the project's working tree included)
# and its /tmp lasts only while calls follow each other closely (about 30 s apart), the parts are
# sized to fit beside the working tree (at most 60 MiB; CARRY_LIMIT_MIB sets the limit) and sent
# back to back, one part a call; the script prints how many calls the parts it made take:
#   call 1      carry .gpu-carry/sglang.part00; command: mkdir -p /tmp/stage && cp .gpu-carry/sglang.part00 /tmp/stage/
#   call 2..N-1 the same for part01, part02, ...
#   call N      carry the last part, flashinfer.tgz, the wheels and sglang.sha256 (one more call
#               if they do not fit together), then in the same command:
#               cp .gpu-carry/* /tmp/stage/ && (cd /tmp/stage && sha256sum -c sglang.sha256) \
#               && mkdir -p /tmp/sgl /tmp/fi && cat /tmp/stage/sglang.part* | xz -dc | tar -xf - -C /tmp/sgl \
#               && tar -xzf /tmp/stage/flashinfer.tgz -C /tmp/fi \
#               && python3 -m pip install --no-deps --no-index /tmp/stage/*.whl \
#               && printf '%s\n' /tmp/sgl /tmp/fi > "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/sglang-0.5.16-staged.pth" \
#               && <your command>
# Later calls on the same machine find it installed and registered.
#
# Dropped after installing (a Hopper GPU never loads them; the script stops if one is missing,
# since that means sglang-kernel's layout changed):
#   sgl_kernel/sm100/        common_ops for every GPU other than sm_90 (sgl_kernel/load_utils.py
#                            loads sgl_kernel/sm90/common_ops on compute capability 9.0)
#   sgl_kernel/flashmla_ops.abi3.so
#                            FlashMLA, attention of MLA models (DeepSeek); sgl_kernel/flash_mla.py
#                            imports it in a try-block
#   sgl_kernel/infllm_ops.cpython-310-x86_64-linux-gnu.so
#                            InfLLM-V2 sparse attention (MiniCPM4), built for CPython 3.10 only,
#                            loaded lazily by sgl_kernel/infllm_v2/_loader.py
#   bin/                     console scripts whose first line names this machine's Python
# Kept: sgl_kernel/flash_ops.abi3.so (FlashAttention 3, SGLang's default attention on Hopper for
# Llama-shaped models; sgl_kernel/flash_attn.py imports it unconditionally).
#
# Environment: PYTHON (default python3, any version with pip), STAGE_DIR (default
# /tmp/sglang-stage: downloads and unpacked folders, reused), OUT_DIR (default .gpu-carry in the
# project), CARRY_LIMIT_MIB (default 64), PART_MIB (overrides the computed part size),
# XZ_LEVEL (default 6: on sglang-kernel's FlashAttention library xz -6 gives a third of gzip -6's
# size, and it is slow, about 0.4 MB/s per core; -1 is 8x faster and half of gzip's size).
#
# Seen on a 2-core x86-64 machine (nice 19, shared), 2026-12-03: 51 + 3 wheels (444 + 20 MiB);
# the SGLang folder 1408 MiB installed, 1347 MiB after the drops; packed into 4 parts (3 x 58 MiB
# + 35 MiB, beside a 4.3 MiB working tree) and a 15 MiB flashinfer.tgz, so 4 calls; 41 min wall
# (16 min CPU), nearly all of it xz. Unpacking all parts there took 27 s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel)
req="$here/sglang-0.5.16-requirements.txt"
py=${PYTHON:-python3}
work=${STAGE_DIR:-/tmp/sglang-stage}
out=${OUT_DIR:-$root/.gpu-carry}
limit_mib=${CARRY_LIMIT_MIB:-64}
mib=1048576

case "$out" in
  "$root"/*) git -C "$root" check-ignore -q "$out/probe" \
      || { echo "stage-sglang: $out is not git-ignored; add it to .gitignore" >&2; exit 1; } ;;
esac

plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform linux_x86_64
      --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
for n in $(seq 5 35); do plat+=(--platform "manylinux_2_${n}_x86_64"); done

# The package lines of one "# [name]" section of the requirements file.
section() { awk -v s="# [$1]" 'index($0, "# [") == 1 {on = index($0, s) == 1; next}
                               on && /^[^#[:space:]]/ {print $1}' "$req"; }

mkdir -p "$work" "$out"
section sglang > "$work/sglang.txt"
section flashinfer > "$work/flashinfer.txt"
section image > "$work/image.txt"

stage() {  # stage NAME: download and install one section into $work/NAME-site
  local name=$1 list="$work/$1.txt" wheels="$work/$1-wheels" site="$work/$1-site"
  "$py" -m pip download -q --no-deps "${plat[@]}" -d "$wheels" -r "$list"
  rm -rf "$site"
  "$py" -m pip install -q --no-deps --no-compile --no-index --find-links "$wheels" "${plat[@]}" \
    --target "$site" -r "$list"
  local wanted got
  wanted=$(wc -l < "$list")
  got=$(find "$site" -maxdepth 1 -name '*.dist-info' | wc -l)
  [ "$wanted" -eq "$got" ] || { echo "stage-sglang: $name: $got of $wanted installed" >&2; exit 1; }
  echo "$name: $got packages, wheels $(du -sm "$wheels" | cut -f1) MiB"
}
stage sglang
stage flashinfer

site="$work/sglang-site"
before=$(du -sb "$site" | cut -f1)
for path in sgl_kernel/sm100 sgl_kernel/flashmla_ops.abi3.so \
            sgl_kernel/infllm_ops.cpython-310-x86_64-linux-gnu.so bin; do
  [ -e "$site/$path" ] || { echo "stage-sglang: $path not found; sglang-kernel changed?" >&2; exit 1; }
  echo "drop $path ($(du -sm "$site/$path" | cut -f1) MiB)"
  rm -rf "${site:?}/$path"
done
after=$(du -sb "$site" | cut -f1)
echo "sglang folder: $((before / mib)) MiB installed, $((after / mib)) MiB after the drops"
for pth in "$site"/*.pth "$work"/flashinfer-site/*.pth; do
  if [ -e "$pth" ]; then echo "warning: $pth is not read from a folder added to sys.path" >&2; fi
done

# Part size: what fits beside the working tree in one 64 MiB call, 1 MiB spare, 60 MiB at most.
tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard \
       | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
part_mib=$(((limit_mib * mib - tree) / mib - 1))
if [ "$part_mib" -gt 60 ]; then part_mib=60; fi
part_mib=${PART_MIB:-$part_mib}
[ "$part_mib" -gt 0 ] || { echo "stage-sglang: no room for a part beside a $tree-byte tree" >&2; exit 1; }
part=$((part_mib * mib))

rm -f "$out"/sglang.part* "$out/flashinfer.tgz" "$out/sglang.sha256" "$out"/*.whl
"$py" -m pip download -q --no-deps "${plat[@]}" -d "$out" -r "$work/image.txt"
tar -C "$site" -cf - . | xz -T0 "-${XZ_LEVEL:-6}" | split -b "$part" -d -a 2 - "$out/sglang.part"
tar -C "$work/flashinfer-site" -czf "$out/flashinfer.tgz" .
(cd "$out" && sha256sum sglang.part* flashinfer.tgz ./*.whl > sglang.sha256)

echo "working tree $((tree / 1024)) KiB; parts of at most $part_mib MiB:"
ls -l "$out"/sglang.part* "$out/flashinfer.tgz" "$out"/*.whl "$out/sglang.sha256"
parts=("$out"/sglang.part*)
last=${#parts[@]}
tail_bytes=$(( $(stat -c %s "${parts[last - 1]}") + $(stat -c %s "$out/flashinfer.tgz") \
              + $(cat "$out"/*.whl | wc -c) + $(stat -c %s "$out/sglang.sha256") ))
calls=$last
if [ $((tree + tail_bytes)) -gt $((limit_mib * mib)) ]; then calls=$((last + 1)); fi
echo "plan: $calls back-to-back calls: sglang.part00..$(basename "${parts[last - 1]}"), one a call;" \
     "flashinfer.tgz, the wheels and sglang.sha256 $([ "$calls" -eq "$last" ] && echo "with the last part" || echo "in one more call")"
