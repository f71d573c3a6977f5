#!/usr/bin/env bash
# Issue 5's memory check: a random-weight model of DeepSeek-V2-Lite's exact
# shape (27 layers, Q4_K_M, ~10 GB; bench/models.sh) is dropped from the page
# cache, then `moelite run` generates a few tokens from it and reports
# (`--memory --json`) its resident memory against the weight bytes the run
# read: every dense weight (attention, dense and shared FFN, routers, output),
# the embedding rows of the tokens seen, and of each MoE layer only the
# experts the router chose (counted by --expert-stats). It does so once per
# mmap advice: "normal" (the kernel's read-around: a page fault reads the
# device's read_ahead_kb window around it) and "random" (--mmap-random:
# madvise(MADV_RANDOM), each fault reads its page alone), and prints one
# Markdown table. The cache is dropped with `moelite pagecache --evict`
# (posix_fadvise, no root needed); a filesystem that ignores it makes the
# start warm, which the table shows in its "cached before" column.
#
# usage: bench/moe-rss.sh [BUILD]        (default: build)
# environment: MOELITE (BUILD/moelite), BENCH_DIR (BUILD/bench: where the
# model is made once and kept; results go to BUILD/bench/moe-rss-TIME), THREADS (2), GEN (tokens to generate, one
# run each: "1 16"), PROMPT ("Hello"), ADVICE ("normal random").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/models.sh"

BUILD=${1:-build}
MOELITE=${MOELITE:-$BUILD/moelite}
BENCH_DIR=${BENCH_DIR:-$BUILD/bench}
THREADS=${THREADS:-2}
GEN=${GEN:-1 16}
PROMPT=${PROMPT:-Hello}
ADVICE=${ADVICE:-normal random}
[[ -x "$MOELITE" ]] || { echo "moe-rss.sh: $MOELITE not found; build first (make)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "moe-rss.sh: python3 is needed to read the JSON" >&2; exit 1; }
mkdir -p "$BENCH_DIR"
file=$(ensure_bench_model "$MOELITE" "$BENCH_DIR" "$V2_LITE_FULL")
out=$BUILD/bench/moe-rss-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

runs=()
for gen in $GEN; do
    for advice in $ADVICE; do
        flags=()
        case $advice in
            normal) ;;
            random) flags=(--mmap-random) ;;
            *) echo "moe-rss.sh: unknown advice '$advice' (normal, random)" >&2; exit 1 ;;
        esac
        run=n$gen-$advice
        "$MOELITE" pagecache --evict "$file" | tee "$out/$run.cached-before" >&2
        echo "moelite run ($advice advice): -p '$PROMPT' -n $gen -t $THREADS ..." >&2
        start=$SECONDS
        "$MOELITE" run -m "$file" -p "$PROMPT" -n "$gen" -t "$THREADS" --temp 0 --ignore-eos \
            --expert-stats --memory --json "${flags[@]}" >"$out/$run.json"
        echo $((SECONDS - start)) >"$out/$run.seconds"
        runs+=("$run")
    done
done

python3 - "$out" "$file" "${runs[@]}" <<'PY'
import json, re, sys
out, path, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
gib = lambda b: b / 2**30
print(f"file: {path}\n")
print("| tokens | advice | cached before | wall s | read: dense + experts (chosen/total) | peak RSS | RssFile | RssAnon "
      "| page cache after | peak RSS / read | RssFile / read | peak RSS / file |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for run in runs:
    j = json.load(open(f"{out}/{run}.json"))
    m = j["memory"]
    before = int(re.search(r": (\d+) of", open(f"{out}/{run}.cached-before").read()).group(1))
    secs = float(open(f"{out}/{run}.seconds").read())
    read = m["touched_bytes"]
    tokens = f"{j['prompt_tokens']} + {j['generated_tokens']}"
    print(f"| {tokens} | {run.split('-', 1)[1]} | {gib(before):.2f} GiB | {secs:.0f} | {gib(read):.2f} GiB = "
          f"{gib(m['dense_bytes'] + m['embedding_bytes']):.2f} + {gib(m['expert_bytes']):.2f} "
          f"({m['experts_chosen']}/{m['experts_total']}) | {gib(m['vm_hwm']):.2f} GiB | {gib(m['rss_file']):.2f} GiB "
          f"| {gib(m['rss_anon']):.2f} GiB | {gib(m['file_cached_bytes']):.2f} GiB | {m['vm_hwm'] / read:.2f} "
          f"| {m['rss_file'] / read:.2f} | {m['vm_hwm'] / m['file_bytes']:.2f} |")
m = json.load(open(f"{out}/{runs[0]}.json"))["memory"]
print(f"\nfile {gib(m['file_bytes']):.2f} GiB, weights {gib(m['weight_bytes']):.2f} GiB; tokens: evaluated as "
      f"the prompt + one at a time; JSON in {out}")
PY
