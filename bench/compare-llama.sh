#!/usr/bin/env bash
# moelite against llama.cpp on the same files, same threads, same machine, in
# one run: for each benchmark model (bench/models.sh), llama-bench and
# `moelite bench` with the same -p/-n/-t/-r, each under /usr/bin/time -v for
# its peak RSS, then one Markdown table: file, llama.cpp pp/tg, moelite pp/tg,
# the ratios (moelite / llama.cpp), decode as a fraction of the bandwidth
# roofline for both, the peak RSS of both, and both programs' time to first
# token from a cold start.
#
# The two programs alternate: ROUNDS rounds per file, each running llama-bench
# and then `moelite bench` with -r REPS. A shared machine's speed drifts by
# tens of percent within minutes (bench/README.md), so each ratio is taken
# within a round, from runs a few seconds apart, and the table gives the
# median over the rounds (t/s: median ± stddev of the rounds' means; peak
# RSS: the largest of the rounds).
#
# The roofline is bandwidth / bytes read per generated token (models/bench.h).
# The bandwidth is probed by `moelite bench --bandwidth` (same thread count) in
# its own process before each file, so the probe's buffer is not in moelite's
# peak RSS; the table uses the best probe of the run (on a shared machine a
# probe taken while others load it reads low), and lists them all.
#
# Cold start: COLD rounds per file, each dropping the file from the page cache
# (`moelite pagecache --evict`) before each program's run of -p 16 -n 0 -r 1;
# the wall time of the whole process (load, then a warm-up and a timed prompt
# of 16 tokens, the same in both programs), median over the rounds.
#
# usage: LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin bench/compare-llama.sh [BUILD]
# environment: THREADS (2), PROMPT (512), GEN (128), ROUNDS (3), REPS (1), COLD (3; 0
# leaves the cold starts out); MODELS: a space-separated subset of the file names in
# bench/models.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/models.sh"

BUILD=${1:-build}
MOELITE=$BUILD/moelite
BENCH_DIR=$BUILD/bench
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-512}
GEN=${GEN:-128}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-1}
COLD=${COLD:-3}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ && "$REPS" =~ ^[1-9][0-9]*$ ]] ||
    { echo "compare-llama.sh: ROUNDS and REPS must be positive whole numbers" >&2; exit 1; }
[[ "$COLD" =~ ^[0-9]+$ ]] || { echo "compare-llama.sh: COLD must be a whole number" >&2; exit 1; }
: "${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to the bin directory of a llama.cpp build (the one holding llama-bench)}"
LLAMA_BENCH=$LLAMA_CPP_BIN/llama-bench
[[ -x "$LLAMA_BENCH" ]] || { echo "compare-llama.sh: $LLAMA_BENCH not found" >&2; exit 1; }
[[ -x "$MOELITE" ]] || { echo "compare-llama.sh: $MOELITE not found; build first (make)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "compare-llama.sh: /usr/bin/time (GNU time) is needed for peak RSS" >&2; exit 1; }
command -v python3 >/dev/null || { echo "compare-llama.sh: python3 is needed to read the JSON" >&2; exit 1; }
mkdir -p "$BENCH_DIR"
out=$BENCH_DIR/compare-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

probe() {
    "$MOELITE" bench --bandwidth -t "$THREADS" --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["bandwidth_gbs"])' | tee -a "$out/bandwidth"
}

# timed_run PROG COMMAND...: one round's run of PROG (llama or moelite) on
# file $name, its JSON, log and time output kept as $out/$name.PROG.$round.*.
timed_run() {
    local prog=$1 stem
    shift
    stem=$out/$name.$prog.$round
    echo "$prog $name (round $round of $ROUNDS) ..." >&2
    /usr/bin/time -v -o "$stem.time" "$@" >"$stem.json" 2>"$stem.log" ||
        echo "  $prog failed on $name (see $stem.log)" >&2
}

# cold_run PROG COMMAND...: one cold start of PROG on file $f: the file's
# pages dropped first, the process's wall seconds in $out/$name.PROG.cold$round.seconds.
cold_run() {
    local prog=$1 stem
    shift
    stem=$out/$name.$prog.cold$round
    echo "$prog $name cold start (round $round of $COLD) ..." >&2
    "$MOELITE" pagecache --evict "$f" >/dev/null
    /usr/bin/time -f %e -o "$stem.seconds" "$@" >"$stem.json" 2>"$stem.log" ||
        echo "  $prog failed on $name (see $stem.log)" >&2
}

for line in "${BENCH_MODELS[@]}"; do
    read -r name _ <<<"$line"
    if [[ -n "${MODELS:-}" && " $MODELS " != *" $name "* ]]; then continue; fi
    f=$(ensure_bench_model "$MOELITE" "$BENCH_DIR" "$line")
    bw=$(probe)
    echo "read bandwidth now: $bw GB/s with $THREADS threads" >&2
    for ((round = 1; round <= ROUNDS; round++)); do
        timed_run llama "$LLAMA_BENCH" -m "$f" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r "$REPS" -o json
        timed_run moelite "$MOELITE" bench -m "$f" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r "$REPS" \
            --bandwidth-gbs "$bw" --json
    done
    for ((round = 1; round <= COLD; round++)); do
        cold_run llama "$LLAMA_BENCH" -m "$f" -p 16 -n 0 -t "$THREADS" -r 1 -o json
        cold_run moelite "$MOELITE" bench -m "$f" -p 16 -n 0 -t "$THREADS" -r 1 --json
    done
    echo "$name" >>"$out/files"
done
probe >/dev/null

python3 - "$out" "$THREADS" "$ROUNDS" "$REPS" "$COLD" <<'PY'
import json, os, re, statistics, sys

out, threads, rounds, reps, cold = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
probes = [float(x) for x in open(os.path.join(out, "bandwidth")).read().split()]
bw = max(probes)

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

def rounds_of(name, prog):
    """(pp, tg) of each round; None where a run failed."""
    return [rates(load(os.path.join(out, f"{name}.{prog}.{r}.json"))) for r in range(1, rounds + 1)]

def median_ts(tests):
    v = [t["avg_ts"] for t in tests if t]
    return statistics.median(v) if v else None

def ts(tests):
    done = [t for t in tests if t]
    if not done:
        return "failed"
    if len(done) == 1:  # one round: the program's own spread over its repetitions
        spread = done[0].get("stddev_ts", 0.0)
    else:
        spread = statistics.stdev(t["avg_ts"] for t in done)
    return f"{median_ts(done):.2f} ± {spread:.2f}"

def ratio(ours, theirs):
    """Median over rounds of the ratio within each round."""
    v = [a["avg_ts"] / b["avg_ts"] for a, b in zip(ours, theirs) if a and b and b["avg_ts"] > 0]
    return f"{statistics.median(v):.2f}x" if v else "-"

def pct(x):
    return f"{100 * x:.1f} %" if x is not None else "-"

def mib(x):
    return f"{x:.0f} MiB" if x is not None else "-"

def cold_start(name, prog):
    """Median wall seconds of the cold starts that gave results."""
    v = []
    for r in range(1, cold + 1):
        stem = os.path.join(out, f"{name}.{prog}.cold{r}")
        if not load(stem + ".json"):
            continue
        try:
            v.append(float(open(stem + ".seconds").read().split()[-1]))
        except (OSError, ValueError, IndexError):
            pass
    return f"{statistics.median(v):.2f} s" if v else "-"

def peak_rss(name, prog):
    """The largest of the rounds whose run gave results (a failed run has a time file too)."""
    v = [rss_mib(os.path.join(out, f"{name}.{prog}.{r}.time")) for r in range(1, rounds + 1)
         if load(os.path.join(out, f"{name}.{prog}.{r}.json"))]
    v = [x for x in v if x is not None]
    return max(v) if v else None

names = open(os.path.join(out, "files")).read().split()
isa, test_names = "?", ""
print(f"threads: {threads}; read bandwidth {bw:.2f} GB/s, the best of {len(probes)} probes "
      f"({', '.join(f'{p:.1f}' for p in probes)} GB/s); ratios are moelite / llama.cpp\n")
print("| file | llama.cpp pp | llama.cpp tg | moelite pp | moelite tg | pp ratio | tg ratio "
      "| tg roofline (moelite) | tg roofline (llama.cpp) | peak RSS llama.cpp | peak RSS moelite "
      "| cold start llama.cpp | cold start moelite |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for name in names:
    lpp, ltg = zip(*rounds_of(name, "llama"))
    mpp, mtg = zip(*rounds_of(name, "moelite"))
    some_mtg = next((t for t in mtg if t), None)
    roof = bw * 1e9 / some_mtg["bytes_per_token"] if some_mtg and some_mtg.get("bytes_per_token") else None
    if some_mtg:
        isa = some_mtg.get("isa", isa)
    some = [t for t in (next((t for t in mpp if t), None), some_mtg) if t]
    if some and not test_names:
        test_names = ", ".join(f"pp{t['n_prompt']}" if t["n_gen"] == 0 else f"tg{t['n_gen']}" for t in some)
    m_tg, l_tg = median_ts(mtg), median_ts(ltg)
    print(f"| {name} | {ts(lpp)} | {ts(ltg)} | {ts(mpp)} | {ts(mtg)} | {ratio(mpp, lpp)} | {ratio(mtg, ltg)} "
          f"| {pct(m_tg / roof if m_tg and roof else None)} "
          f"| {pct(l_tg / roof if l_tg and roof else None)} "
          f"| {mib(peak_rss(name, 'llama'))} | {mib(peak_rss(name, 'moelite'))} "
          f"| {cold_start(name, 'llama')} | {cold_start(name, 'moelite')} |")
print(f"\ntests: {test_names} (t/s over {rounds} rounds of -r {reps}: "
      f"median ± stddev; ratios: median of the rounds' ratios); cold start: wall time of the whole "
      f"process of pp16 from an evicted page cache, median of {cold} rounds; moelite kernels: {isa}; "
      f"raw results in {out}")
PY
