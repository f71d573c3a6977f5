#!/usr/bin/env bash
# `make bench`: benchmark models with the exact shapes of R1-Distill-Qwen-1.5B
# (Q4_0, Q4_K_M, Q8_0) and of DeepSeek-V2-Lite cut to 8 layers (Q4_K_M),
# random weights, each through `moelite bench`. The files are generated once
# and cached in BUILD/bench (see bench/models.sh).
#
# usage: bench/run.sh [BUILD]        (default: build)
# environment: THREADS (2), PROMPT (512), GEN (128), REPS (3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/models.sh"

BUILD=${1:-build}
MOELITE=$BUILD/moelite
BENCH_DIR=$BUILD/bench
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
REPS=${REPS:-3}
[[ -x "$MOELITE" ]] || { echo "bench/run.sh: $MOELITE not found; build first (make)" >&2; exit 1; }
mkdir -p "$BENCH_DIR"

files=()
for line in "${BENCH_MODELS[@]}"; do files+=("$(ensure_bench_model "$MOELITE" "$BENCH_DIR" "$line")"); done

# Each run probes the read bandwidth itself, just before its tests: on a
# shared machine the bandwidth available changes from minute to minute.
printf 'moelite bench: %s threads, pp%s, tg%s, %s repetitions\n\n' "$THREADS" "$PROMPT" "$GEN" "$REPS"
for f in "${files[@]}"; do
    echo "### $(basename "$f")"
    "$MOELITE" bench -m "$f" -t "$THREADS" -p "$PROMPT" -n "$GEN" -r "$REPS"
    echo
done
