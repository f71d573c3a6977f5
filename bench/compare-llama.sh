#!/usr/bin/env bash
# moelite against llama.cpp on the same files, same threads, same machine, in
# one run: for each benchmark model (bench/models.sh), llama-bench and
# `moelite bench` with the same -p/-n/-t/-r, each under /usr/bin/time -v for
# its peak RSS, then one Markdown table: file, llama.cpp pp/tg, moelite pp/tg,
# the ratios (moelite / llama.cpp), decode as a fraction of the bandwidth
# roofline for both, and the peak RSS of both.
#
# The roofline is bandwidth / bytes read per generated token (models/bench.h);
# the bandwidth is measured once here by `moelite bench --bandwidth` with the
# same thread count, and handed to every moelite run (--bandwidth-gbs), so the
# probe's buffer is not in moelite's peak RSS.
#
# usage: LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin bench/compare-llama.sh [BUILD]
# environment: THREADS (2), PROMPT (512), GEN (128), REPS (3); MODELS: a
# space-separated subset of the file names in bench/models.sh.
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
: "${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to the bin directory of a llama.cpp build (the one holding llama-bench)}"
LLAMA_BENCH=$LLAMA_CPP_BIN/llama-bench
[[ -x "$LLAMA_BENCH" ]] || { echo "compare-llama.sh: $LLAMA_BENCH not found" >&2; exit 1; }
[[ -x "$MOELITE" ]] || { echo "compare-llama.sh: $MOELITE not found; build first (make)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "compare-llama.sh: /usr/bin/time (GNU time) is needed for peak RSS" >&2; exit 1; }
command -v python3 >/dev/null || { echo "compare-llama.sh: python3 is needed to read the JSON" >&2; exit 1; }
mkdir -p "$BENCH_DIR"
out=$BENCH_DIR/compare-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

"$MOELITE" bench --bandwidth -t "$THREADS" --json >"$out/bandwidth.json"
bw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bandwidth_gbs"])' "$out/bandwidth.json")
echo "read bandwidth: $bw GB/s with $THREADS threads" >&2

for line in "${BENCH_MODELS[@]}"; do
    read -r name _ <<<"$line"
    if [[ -n "${MODELS:-}" && " $MODELS " != *" $name "* ]]; then continue; fi
    f=$(ensure_bench_model "$MOELITE" "$BENCH_DIR" "$line")
    echo "llama-bench $name ..." >&2
    /usr/bin/time -v -o "$out/$name.llama.time" \
        "$LLAMA_BENCH" -m "$f" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r "$REPS" -o json \
        >"$out/$name.llama.json" 2>"$out/$name.llama.log" ||
        echo "  llama-bench failed on $name (see $out/$name.llama.log)" >&2
    echo "moelite bench $name ..." >&2
    /usr/bin/time -v -o "$out/$name.moelite.time" \
        "$MOELITE" bench -m "$f" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r "$REPS" --bandwidth-gbs "$bw" --json \
        >"$out/$name.moelite.json" 2>"$out/$name.moelite.log" ||
        echo "  moelite bench failed on $name (see $out/$name.moelite.log)" >&2
    echo "$name" >>"$out/files"
done

python3 - "$out" "$THREADS" "$bw" <<'PY'
import json, os, re, sys

out, threads, bw = sys.argv[1], sys.argv[2], float(sys.argv[3])

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def rates(tests):
    pp = tg = None
    for t in tests or []:
        if t.get("n_prompt", 0) > 0 and t.get("n_gen", 0) == 0:
            pp = t
        elif t.get("n_gen", 0) > 0 and t.get("n_prompt", 0) == 0:
            tg = t
    return pp, tg

def rss_mib(path):
    try:
        with open(path) as f:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None

def ts(t):
    return f"{t['avg_ts']:.2f} ± {t['stddev_ts']:.2f}" if t else "failed"

def ratio(a, b):
    return f"{a['avg_ts'] / b['avg_ts']:.2f}x" if a and b and b["avg_ts"] > 0 else "-"

def pct(x):
    return f"{100 * x:.1f} %" if x is not None else "-"

def mib(x):
    return f"{x:.0f} MiB" if x is not None else "-"

names = open(os.path.join(out, "files")).read().split()
isa = "?"
print(f"threads: {threads}; read bandwidth {bw:.2f} GB/s (moelite bench --bandwidth); ratios are moelite / llama.cpp\n")
print("| file | llama.cpp pp | llama.cpp tg | moelite pp | moelite tg | pp ratio | tg ratio "
      "| tg roofline (moelite) | tg roofline (llama.cpp) | peak RSS llama.cpp | peak RSS moelite |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name in names:
    lpp, ltg = rates(load(os.path.join(out, f"{name}.llama.json")))
    mpp, mtg = rates(load(os.path.join(out, f"{name}.moelite.json")))
    roof = mtg.get("roofline_ts") if mtg else None
    if mtg:
        isa = mtg.get("isa", isa)
    print(f"| {name} | {ts(lpp)} | {ts(ltg)} | {ts(mpp)} | {ts(mtg)} | {ratio(mpp, lpp)} | {ratio(mtg, ltg)} "
          f"| {pct(mtg['avg_ts'] / roof if mtg and roof else None)} "
          f"| {pct(ltg['avg_ts'] / roof if ltg and roof else None)} "
          f"| {mib(rss_mib(os.path.join(out, name + '.llama.time')))} "
          f"| {mib(rss_mib(os.path.join(out, name + '.moelite.time')))} |")
test_names = ""
for name in names:
    mpp, mtg = rates(load(os.path.join(out, f"{name}.moelite.json")))
    if mpp or mtg:
        test_names = ", ".join(t for t in [f"pp{mpp['n_prompt']}" if mpp else "", f"tg{mtg['n_gen']}" if mtg else ""] if t)
        break
print(f"\ntests: {test_names} (t/s, mean ± stddev); moelite kernels: {isa}; raw results in {out}")
PY
