#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR (fuzz_*) for SECONDS each, one at a
# time, in-process (no -jobs: one process), niced. Target fuzz_NAME reads its
# seeds from fuzz/corpus/NAME (never written to); new inputs go to
# fuzz/scratch/NAME (git-ignored) and crashes to fuzz/crashes/NAME/.
# Usage: tools/run-fuzz.sh BUILD_DIR SECONDS [EXTRA LIBFUZZER FLAGS...]
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
build=$1
seconds=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)

shopt -s nullglob
targets=("$build"/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
  echo "no fuzz_* binaries in $build (configure with -DMOELITE_FUZZ=ON)" >&2
  exit 1
fi

status=0
for target in "${targets[@]}"; do
  [ -x "$target" ] && [ -f "$target" ] || continue
  name=$(basename "$target")
  name=${name#fuzz_}
  corpus=$root/fuzz/corpus/$name
  work=$root/fuzz/scratch/$name
  crashes=$root/fuzz/crashes/$name
  mkdir -p "$work" "$crashes"
  dicts=()
  [ -f "$root/fuzz/$name.dict" ] && dicts=(-dict="$root/fuzz/$name.dict")
  echo "== fuzz_$name: ${seconds}s, seeds from fuzz/corpus/$name, crashes to fuzz/crashes/$name" >&2
  seeds=()
  [ -d "$corpus" ] && seeds=("$corpus")
  # The first corpus directory receives new inputs: keep it the work copy.
  if ! nice -n 10 "$target" "$work" "${seeds[@]}" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$crashes/" "${dicts[@]}" "$@"; then
    echo "!! fuzz_$name found a problem: see fuzz/crashes/$name/" >&2
    status=1
  fi
done
exit $status
