#!/usr/bin/env bash
# For a machine with wider kernels than AVX2 (AVX-512, VNNI, AMX): the whole
# test suite's log (every ISA path this CPU runs, against the scalar one),
# then prefill and decode of the bench models under each ISA the CPU
# supports, side by side (MOELITE_ISA caps the choice; a cap above what the
# machine has falls back to its best, and the "kernels:" line shows which ran).
#
# usage: bench/isa-check.sh [BUILD] [OUT]
#   BUILD: the build folder (default build); OUT: where the logs go
#   (default BUILD/isa-check-<UTC time>).
# environment: THREADS (2), PROMPT (512), GEN (32), REPS (2), MODELS (file
#   names of bench/models.sh, space-separated; default the Q4_0 and Q4_K_M
#   1.5B files and V2-Lite 8l), ISAS (default "avx2 avx512 avx512vnni amx"),
#   MOELITE_FIXTURES (passed to the tests when set).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/models.sh"

BUILD=${1:-build}
OUT=${2:-$BUILD/isa-check-$(date -u +%Y%m%dT%H%M%SZ)}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-512}
GEN=${GEN:-32}
REPS=${REPS:-2}
MODELS=${MODELS:-"r1-qwen-1.5b-q4_0.gguf r1-qwen-1.5b-q4_k_m.gguf deepseek-v2-lite-8l-q4_k_m.gguf"}
ISAS=${ISAS:-"avx2 avx512 avx512vnni amx"}
MOELITE=$BUILD/moelite
TESTS=$BUILD/moelite_tests
for bin in "$MOELITE" "$TESTS"; do
    [[ -x "$bin" ]] || { echo "bench/isa-check.sh: $bin not found; build first (make)" >&2; exit 1; }
done
mkdir -p "$OUT" "$BUILD/bench"

{
    echo "# $(date -u) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "# flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512[a-z_]*|amx[a-z_0-9]*)$' | tr '\n' ' ')"
} | tee "$OUT/machine.txt"

echo "== tests (whole log: $OUT/tests.log)"
set +e
"$TESTS" -s >"$OUT/tests.log" 2>&1
tests_rc=$?
set -e
tail -n 4 "$OUT/tests.log"
echo "tests exit code: $tests_rc"

echo "== bench: $THREADS threads, pp$PROMPT, tg$GEN, $REPS repetitions"
for name in $MODELS; do
    line=""
    for l in "${BENCH_MODELS[@]}"; do [[ ${l%% *} == "$name" ]] && line=$l; done
    [[ -n "$line" ]] || { echo "bench/isa-check.sh: $name is not in bench/models.sh" >&2; exit 1; }
    file=$(ensure_bench_model "$MOELITE" "$BUILD/bench" "$line")
    for isa in $ISAS; do
        log="$OUT/bench-${name%.gguf}-$isa.txt"
        MOELITE_ISA=$isa "$MOELITE" bench -m "$file" -t "$THREADS" -p "$PROMPT" -n "$GEN" -r "$REPS" >"$log" 2>&1 ||
            { echo "bench failed: $log" >&2; exit 1; }
        ran=$(grep -o 'kernels: [a-z0-9]*' "$log" | head -n 1)
        printf '%-36s %-11s %-20s %s\n' "$name" "$isa" "($ran)" \
            "$(grep -E '\| +(pp|tg)[0-9]+ ' "$log" | awk -F'|' '{gsub(/ /,"",$7); gsub(/^ +| +$/,"",$8); printf "%s %s  ", $7, $8}')"
    done
done | tee "$OUT/bench.txt"
exit $tests_rc
