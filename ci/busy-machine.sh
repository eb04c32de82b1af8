#!/usr/bin/env bash
# The README's two commands on a fresh clone, then its test command PASSES times in a row beside
# two CPU-bound processes, as on a shared CI runner (docs/reliability.md, "The test command on a
# busy machine"). Results and logs go to OUT (default ./busy-machine).
#
#   PASSES=5 OUT=/tmp/busy bash ci/busy-machine.sh
set -u
passes=${PASSES:-5}
out=$(realpath -m "${OUT:-busy-machine}")
repo=$(git rev-parse --show-toplevel) || exit 2
clone=$(mktemp -d)/pytest-llmbench
mkdir -p "$out"
git clone -q "$repo" "$clone" && cd "$clone" || exit 2
summary="$out/summary.log"
setup=$(grep -E '^bash ci/setup.sh' README.md | head -1 | sed 's/ *#.*//')
testcmd=$(grep -E '^\.venv/bin/pytest ' README.md | head -1 | sed 's/ *#.*//')
echo "commit $(git rev-parse --short HEAD) $(date -u +%FT%TZ)" | tee "$summary"
t0=$(date +%s); bash -c "$setup" > "$out/setup.log" 2>&1
echo "setup rc=$? $(( $(date +%s) - t0 ))s" | tee -a "$summary"
python3 -c 'while True: pass' & hog1=$!
python3 -c 'while True: pass' & hog2=$!
trap 'kill $hog1 $hog2 2>/dev/null' EXIT
for i in $(seq 1 "$passes"); do
  rm -rf out; t0=$(date +%s)
  PYTEST_ADDOPTS="--junitxml=$out/pass$i.xml" bash -c "$testcmd" > "$out/pass$i.log" 2>&1
  rc=$?
  echo "pass $i rc=$rc $(( $(date +%s) - t0 ))s $(grep -E '^=+ .*(passed|failed).* =+$' "$out/pass$i.log" | tail -1)" \
    | tee -a "$summary"
  [ "$rc" = 0 ] || grep -E '^(FAILED|ERROR) ' "$out/pass$i.log" | tee -a "$summary"
done
