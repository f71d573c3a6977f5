// `moelite bench -m FILE [-p 512] [-n 128] [-d 0] [-t N] [-r 3] [--json]`: prompt
// processing and generation speed, printed as llama-bench prints them (a
// Markdown table, or with --json an array of one object per test with
// llama-bench's field names), plus the kernel path used and decode as a
// fraction of the memory-bandwidth roofline (models/bench.h).
// `moelite bench --bandwidth [-t N]`: the bandwidth probe alone; its result
// can be handed to later runs with --bandwidth-gbs (bench/compare-llama.sh
// does, so the probe's 1 GiB buffer does not count in the peak RSS it reports).
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/common.h"
#include "backends/cpu/thread_pool.h"
#include "core/error.h"
#include "models/bench.h"

namespace moelite::app {
namespace {

std::string format_size(double bytes) {
    if (bytes >= double(1 << 30)) return strprintf("%.2f GiB", bytes / double(1 << 30));
    return strprintf("%.2f MiB", bytes / double(1 << 20));
}

std::string format_params(double n) {
    if (n >= 1e9) return strprintf("%.2f B", n / 1e9);
    if (n >= 1e6) return strprintf("%.2f M", n / 1e6);
    return strprintf("%.2f K", n / 1e3);
}

std::string utc_now() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

void print_table_header() {
    std::printf("| %-30s | %10s | %10s | %-10s | %7s | %15s | %20s |\n", "model", "size", "params", "backend",
                "threads", "test", "t/s");
    std::printf("| %s | %s: | %s: | %s | %s: | %s: | %s: |\n", std::string(30, '-').c_str(),
                std::string(9, '-').c_str(), std::string(9, '-').c_str(), std::string(10, '-').c_str(),
                std::string(6, '-').c_str(), std::string(14, '-').c_str(), std::string(19, '-').c_str());
}

int run_bench(int argc, char** argv) {
    cxxopts::Options opts("moelite bench", "Measure prompt processing and generation speed (llama-bench style).");
    add_model_options(opts);
    opts.add_options()("p,n-prompt", "prompt tokens of the pp test (0: skip it)",
                       cxxopts::value<int64_t>()->default_value("512"))(
        "n,n-gen", "generated tokens of the tg test (0: skip it)", cxxopts::value<int64_t>()->default_value("128"))(
        "d,n-depth", "tokens already in the context when each test starts (evaluated once, not timed)",
        cxxopts::value<int64_t>()->default_value("0"))(
        "r,repetitions", "measured runs of each test (after one warm-up)", cxxopts::value<int>()->default_value("3"))(
        "json", "print a JSON array of one object per test")(
        "bandwidth", "only measure the memory read bandwidth (-m is not needed, and ignored)")(
        "bandwidth-mib", "buffer of the bandwidth probe, MiB", cxxopts::value<int64_t>()->default_value("1024"))(
        "bandwidth-gbs",
        "use this read bandwidth (GB/s, measured earlier with --bandwidth and the same -t) "
        "instead of probing: keeps the probe's buffer out of this run's peak RSS",
        cxxopts::value<double>())("seed", "seed of the random tokens",
                                  cxxopts::value<uint64_t>()->default_value("1234"))("h,help", "show this help");
    auto args = opts.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", opts.help().c_str());
        return 0;
    }
    const bool json = args.count("json") > 0;
    const int64_t n_prompt = args["n-prompt"].as<int64_t>();
    const int64_t n_gen = args["n-gen"].as<int64_t>();
    const int reps = args["repetitions"].as<int>();
    const int64_t bw_mib = args["bandwidth-mib"].as<int64_t>();
    const int64_t n_depth = args["n-depth"].as<int64_t>();
    if (n_prompt < 0 || n_gen < 0) fail("-p and -n must not be negative");
    if (n_depth < 0 || n_depth > (int64_t(1) << 20)) fail("-d must be between 0 and 1048576");
    if (reps < 1 || reps > 1000) fail("-r must be between 1 and 1000");
    if (bw_mib < 1 || bw_mib > (int64_t(1) << 20)) fail("--bandwidth-mib must be between 1 and 1048576");
    const size_t bw_bytes = size_t(bw_mib) << 20;

    if (args.count("bandwidth")) {
        int threads = args["threads"].as<int>();
        if (threads < 0 || threads > 1024) fail("--threads must be between 0 and 1024");
        if (threads == 0) threads = ThreadPool::default_threads();
        const BandwidthResult bw = measure_read_bandwidth(threads, bw_bytes);
        if (json) {
            nlohmann::ordered_json j = {{"test", "bandwidth"},          {"n_threads", bw.n_threads},
                                        {"buffer_bytes", bw.bytes},     {"runs", bw.runs},
                                        {"bandwidth_gbs", bw.gb_per_s}, {"test_time", utc_now()}};
            std::printf("%s\n", j.dump(2).c_str());
        } else {
            std::printf("read bandwidth: %.2f GB/s (%d threads, best of %d reads of %s)\n", bw.gb_per_s, bw.n_threads,
                        bw.runs, format_size(double(bw.bytes)).c_str());
        }
        return 0;
    }
    if (n_prompt == 0 && n_gen == 0) fail("nothing to do: -p and -n are both 0");

    LoadedModel lm = load_model(args);
    const Model& model = *lm.model;
    BenchOptions bo;
    bo.repetitions = reps;
    bo.seed = args["seed"].as<uint64_t>();
    bo.n_depth = n_depth;
    bo.session = session_options(args);
    const int threads = lm.cpu->n_threads();
    const std::string desc = model.description();
    const double size = double(model.weight_bytes());
    const double params = double(model_n_params(model));
    const char* isa = isa_name(lm.cpu->isa());

    // The roofline needs the bandwidth with the same thread count; measured
    // before the tests so its buffer is gone when they run.
    BandwidthResult bw;
    size_t bytes_per_token = 0;
    if (n_gen > 0) {
        if (args.count("bandwidth-gbs")) {
            bw.gb_per_s = args["bandwidth-gbs"].as<double>();
            if (!(bw.gb_per_s > 0 && bw.gb_per_s < 1e5)) fail("--bandwidth-gbs must be a positive rate in GB/s");
            bw.n_threads = threads;
        } else {
            bw = measure_read_bandwidth(threads, bw_bytes);
        }
        bytes_per_token = decode_bytes_per_token(model);
    }

    if (!json) print_table_header();
    std::vector<BenchResult> results;
    auto report = [&](const BenchResult& r) {
        results.push_back(r);
        if (json) return;
        const std::string ts = strprintf("%.2f ± %.2f", r.avg_ts(), r.stddev_ts());
        // "±" is two bytes but one column: pad by hand.
        std::printf("| %-30s | %10s | %10s | %-10s | %7d | %15s | %*s |\n", desc.substr(0, 30).c_str(),
                    format_size(size).c_str(), format_params(params).c_str(), "CPU", threads, r.test.c_str(), 21,
                    ts.c_str());
        std::fflush(stdout);
    };
    if (n_prompt > 0) report(bench_prompt(lm.model, *lm.cpu, n_prompt, bo));
    if (n_gen > 0) report(bench_generation(lm.model, *lm.cpu, n_gen, bo));

    const double roofline_ts = bytes_per_token > 0 ? bw.gb_per_s * 1e9 / double(bytes_per_token) : 0.0;
    if (json) {
        nlohmann::ordered_json out = nlohmann::ordered_json::array();
        const std::string when = utc_now();
        for (const BenchResult& r : results) {
            nlohmann::ordered_json j;
            j["model_filename"] = model.path();
            j["model_type"] = desc;
            j["model_size"] = model.weight_bytes();
            j["model_n_params"] = int64_t(params);
            j["backends"] = "CPU";
            j["isa"] = isa;
            j["n_batch"] = bo.session.n_batch;
            j["n_threads"] = threads;
            j["type_k"] = dtype_name(bo.session.cache_type);
            j["type_v"] = dtype_name(bo.session.cache_type);
            j["n_prompt"] = r.n_prompt;
            j["n_gen"] = r.n_gen;
            j["n_depth"] = r.n_depth;
            j["test_time"] = when;
            j["avg_ns"] = int64_t(std::llround(r.avg_ns()));
            j["stddev_ns"] = int64_t(std::llround(r.stddev_ns()));
            j["avg_ts"] = r.avg_ts();
            j["stddev_ts"] = r.stddev_ts();
            std::vector<int64_t> ns;
            for (double v : r.samples_ns) ns.push_back(int64_t(std::llround(v)));
            j["samples_ns"] = ns;
            j["samples_ts"] = r.samples_ts;
            if (r.n_gen > 0) {
                j["bandwidth_gbs"] = bw.gb_per_s;
                j["bytes_per_token"] = bytes_per_token;
                j["roofline_ts"] = roofline_ts;
                j["roofline_fraction"] = roofline_ts > 0 ? r.avg_ts() / roofline_ts : 0.0;
            }
            out.push_back(j);
        }
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    std::printf("\nkernels: %s", isa);
    if (n_gen > 0) {
        const BenchResult& tg = results.back();
        if (bw.runs > 0)
            std::printf("; read bandwidth %.2f GB/s (%d threads, best of %d reads of %s)\n", bw.gb_per_s, bw.n_threads,
                        bw.runs, format_size(double(bw.bytes)).c_str());
        else
            std::printf("; read bandwidth %.2f GB/s (given with --bandwidth-gbs)\n", bw.gb_per_s);
        std::printf("bytes read per generated token: %s -> roofline %.2f t/s; %s at %.1f %% of it%s\n",
                    format_size(double(bytes_per_token)).c_str(), roofline_ts, tg.test.c_str(),
                    roofline_ts > 0 ? 100.0 * tg.avg_ts() / roofline_ts : 0.0,
                    n_depth > 0 ? " (weights only: the KV cache at that depth is not counted)" : "");
    } else {
        std::printf("\n");
    }
    return 0;
}

CommandRegistration reg("bench", "measure prompt and generation speed (llama-bench style)", run_bench);

}  // namespace
}  // namespace moelite::app
