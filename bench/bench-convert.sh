#!/usr/bin/env bash
# Converter benchmark: generates a synthetic Hugging Face checkpoint of several
# GB (tests/bench_convert_generate.cpp), converts it with `moelite convert`
# under /usr/bin/time -v, and reports throughput (input GB/s) and peak RSS.
# Everything generated is deleted at the end.
#
#   bench/bench-convert.sh [BUILD_DIR]
#   env: PRESET=qwen2-1.5b|deepseek-fp8 (default qwen2-1.5b), TYPE (default q4_k_m),
#        THREADS (default: all), WORK (scratch directory, default: a new one under /tmp),
#        KEEP=1 to keep the generated checkpoint.
set -euo pipefail

BUILD=${1:-build}
PRESET=${PRESET:-qwen2-1.5b}
TYPE=${TYPE:-q4_k_m}
THREADS=${THREADS:-0}
WORK=${WORK:-$(mktemp -d /tmp/moelite-bench-convert.XXXXXX)}
CKPT="$WORK/ckpt-$PRESET"
OUT="$WORK/out-$PRESET-$TYPE.gguf"

cleanup() {
    rm -f "$OUT" "$OUT".tmp-* "$WORK/time.txt" "$WORK/convert.txt"
    if [ "${KEEP:-0}" != 1 ]; then rm -rf "$CKPT"; rmdir "$WORK" 2>/dev/null || true; fi
}
trap cleanup EXIT

for f in "$BUILD/moelite" "$BUILD/moelite_tests"; do
    [ -x "$f" ] || { echo "bench-convert: $f not built (run make first)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench-convert: needs /usr/bin/time (GNU time) for peak RSS" >&2; exit 1; }

if [ ! -f "$CKPT/model.safetensors.index.json" ]; then
    echo "generating $PRESET checkpoint in $CKPT ..."
    MOELITE_BENCH_DIR="$CKPT" MOELITE_BENCH_PRESET="$PRESET" \
        "$BUILD/moelite_tests" -tc='bench: generate*' --no-skip >/dev/null
fi
IN_BYTES=$(du -cb "$CKPT"/*.safetensors | tail -1 | cut -f1)

echo "converting to $TYPE ..."
/usr/bin/time -v "$BUILD/moelite" convert "$CKPT" -o "$OUT" --type "$TYPE" -t "$THREADS" -q \
    >"$WORK/convert.txt" 2>"$WORK/time.txt" || { cat "$WORK/convert.txt" "$WORK/time.txt" >&2; exit 1; }

WALL=$(grep "Elapsed (wall clock)" "$WORK/time.txt" | awk '{print $NF}')
RSS_KB=$(grep "Maximum resident set size" "$WORK/time.txt" | awk '{print $NF}')
SECS=$(echo "$WALL" | awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
OUT_BYTES=$(stat -c %s "$OUT")
cat "$WORK/convert.txt"
awk -v inb="$IN_BYTES" -v outb="$OUT_BYTES" -v s="$SECS" -v rss="$RSS_KB" -v p="$PRESET" -v t="$TYPE" \
    -v cpu="$(nproc)" 'BEGIN {
    printf "\n| preset | type | input | output | wall | throughput (input) | peak RSS | cores |\n";
    printf "|---|---|---|---|---|---|---|---|\n";
    printf "| %s | %s | %.2f GB | %.2f GB | %.1f s | %.3f GB/s | %.0f MB | %d |\n",
        p, t, inb / 1e9, outb / 1e9, s, inb / 1e9 / s, rss / 1024, cpu }'
