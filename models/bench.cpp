// Speed measurements; see models/bench.h for what each number means.
#include "models/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>

#include "backends/cpu/thread_pool.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "models/weight_use.h"

namespace moelite {

double mean_of(const std::vector<double>& values) {
    if (values.empty()) return 0;
    double sum = 0;
    for (double v : values) sum += v;
    return sum / double(values.size());
}

double stddev_of(const std::vector<double>& values) {
    if (values.size() < 2) return 0;
    const double mean = mean_of(values);
    double sq = 0;
    for (double v : values) sq += (v - mean) * (v - mean);
    return std::sqrt(sq / double(values.size() - 1));
}

double BenchResult::avg_ns() const {
    return mean_of(samples_ns);
}
double BenchResult::stddev_ns() const {
    return stddev_of(samples_ns);
}
double BenchResult::avg_ts() const {
    return mean_of(samples_ts);
}
double BenchResult::stddev_ts() const {
    return stddev_of(samples_ts);
}

namespace {

using Clock = std::chrono::steady_clock;

std::vector<int32_t> random_tokens(int64_t n, int64_t n_vocab, std::mt19937_64& rng) {
    std::uniform_int_distribution<int64_t> dist(0, n_vocab - 1);
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (auto& t : tokens) t = int32_t(dist(rng));
    return tokens;
}

void check_options(const BenchOptions& options, int64_t n, const char* what) {
    if (n <= 0 || n > (int64_t(1) << 20)) fail("bench: the number of %s tokens must be between 1 and 2^20", what);
    if (options.repetitions < 1 || options.repetitions > 1000) fail("bench: repetitions must be between 1 and 1000");
    if (options.n_depth < 0 || options.n_depth > (int64_t(1) << 20)) fail("bench: the depth must be between 0 and 2^20");
}

std::string test_name(const char* kind, int64_t n, int64_t depth) {
    std::string name = kind + std::to_string(n);
    if (depth > 0) name += " @ d" + std::to_string(depth);
    return name;
}

// A context for tests of n tokens after the options' depth, that depth
// evaluated once (random tokens, as one prompt).
struct BenchContext {
    Session session;
    int64_t depth;
    BenchContext(std::shared_ptr<const Model> model, Backend& backend, int64_t n, const BenchOptions& options,
                 std::mt19937_64& rng)
        : session(std::move(model), backend, with_ctx(options.session, options.n_depth + n)), depth(options.n_depth) {
        if (depth == 0) return;
        std::vector<float> logits;
        session.eval(random_tokens(depth, session.model().hparams().n_vocab, rng), false, &logits);
    }
    // Back to the depth's tokens, the rest of the cache dropped.
    void rewind() {
        if (depth == 0)
            session.reset();
        else
            session.truncate(depth);
    }
    static SessionOptions with_ctx(SessionOptions o, int64_t n_ctx) {
        o.n_ctx = n_ctx;
        return o;
    }
};

void add_sample(BenchResult& r, int64_t n_tokens, Clock::duration elapsed) {
    const double ns = double(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count());
    r.samples_ns.push_back(ns);
    r.samples_ts.push_back(ns > 0 ? double(n_tokens) * 1e9 / ns : 0.0);
}

}  // namespace

BenchResult bench_prompt(std::shared_ptr<const Model> model, Backend& backend, int64_t n_prompt,
                         const BenchOptions& options) {
    check_options(options, n_prompt, "prompt");
    BenchResult r;
    r.test = test_name("pp", n_prompt, options.n_depth);
    r.n_prompt = n_prompt;
    r.n_depth = options.n_depth;
    std::mt19937_64 rng(options.seed);
    BenchContext ctx(model, backend, n_prompt, options, rng);
    std::vector<float> logits;
    for (int rep = -1; rep < options.repetitions; ++rep) {  // rep -1: the warm-up
        const std::vector<int32_t> tokens = random_tokens(n_prompt, model->hparams().n_vocab, rng);
        ctx.rewind();
        const auto start = Clock::now();
        ctx.session.eval(tokens, false, &logits);
        const auto elapsed = Clock::now() - start;
        if (rep >= 0) add_sample(r, n_prompt, elapsed);
    }
    return r;
}

BenchResult bench_generation(std::shared_ptr<const Model> model, Backend& backend, int64_t n_gen,
                             const BenchOptions& options) {
    check_options(options, n_gen, "generated");
    BenchResult r;
    r.test = test_name("tg", n_gen, options.n_depth);
    r.n_gen = n_gen;
    r.n_depth = options.n_depth;
    std::mt19937_64 rng(options.seed + 1);
    BenchContext ctx(model, backend, n_gen, options, rng);
    std::vector<float> logits;
    // Warm-up: a few decoded tokens fault in the weights and size the scratch
    // (as llama-bench, which decodes one token before its tg runs).
    const int64_t n_warmup = std::min<int64_t>(n_gen, 8);
    for (int rep = -1; rep < options.repetitions; ++rep) {
        const int64_t n = rep < 0 ? n_warmup : n_gen;
        const std::vector<int32_t> tokens = random_tokens(n, model->hparams().n_vocab, rng);
        ctx.rewind();
        const auto start = Clock::now();
        for (int64_t i = 0; i < n; ++i)
            ctx.session.eval(std::span<const int32_t>(&tokens[size_t(i)], 1), false, &logits);
        const auto elapsed = Clock::now() - start;
        if (rep >= 0) add_sample(r, n, elapsed);
    }
    return r;
}

size_t decode_bytes_per_token(const Model& model) {
    // One token: one embedding row, n_expert_used experts in each MoE layer.
    const HParams& hp = model.hparams();
    const int64_t used = hp.n_expert > 0 ? std::clamp<int64_t>(hp.n_expert_used, 1, hp.n_expert) : 0;
    return weights_read(model, 1, [used](int64_t) { return used; }).touched_bytes();
}

int64_t model_n_params(const Model& model) {
    int64_t n = 0;
    for (const Tensor& t : model.weights()) n += t.nelements();
    return n;
}

// ---- memory bandwidth -------------------------------------------------------

namespace {

struct BandwidthJob {
    uint64_t* words = nullptr;
    size_t n_words = 0;
    bool fill = false;
    std::vector<uint64_t>* sums = nullptr;  // one per thread
};

void bandwidth_job(void* ctx, int ith, int nth) {
    auto& job = *static_cast<BandwidthJob*>(ctx);
    // Contiguous shares, each a multiple of 8 words (one 64-byte line).
    const size_t lines = job.n_words / 8;
    const size_t begin = lines * size_t(ith) / size_t(nth) * 8;
    const size_t end = lines * size_t(ith + 1) / size_t(nth) * 8;
    uint64_t* w = job.words;
    if (job.fill) {
        for (size_t i = begin; i < end; ++i) w[i] = i;
        return;
    }
    // Four independent sums, so the adds never wait on each other and the
    // compiler is free to vectorise; the loop is bound by memory.
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = begin; i < end; i += 8) {
        s0 += w[i] + w[i + 4];
        s1 += w[i + 1] + w[i + 5];
        s2 += w[i + 2] + w[i + 6];
        s3 += w[i + 3] + w[i + 7];
    }
    (*job.sums)[size_t(ith)] = s0 + s1 + s2 + s3;
}

}  // namespace

BandwidthResult measure_read_bandwidth(int n_threads, size_t bytes, int runs) {
    if (n_threads <= 0) n_threads = ThreadPool::default_threads();
    if (runs < 1 || runs > 100) fail("bandwidth probe: runs must be between 1 and 100");
    if (bytes < (size_t(1) << 20) || bytes > (size_t(1) << 40)) fail("bandwidth probe: buffer must be 1 MiB to 1 TiB");
    bytes &= ~size_t(63);
    // The same memory as the weights' (huge pages where the kernel gives them).
    const HostMemory mem = allocate_host_memory(bytes, 64, "bandwidth probe");

    ThreadPool pool(n_threads);
    std::vector<uint64_t> sums(size_t(n_threads), 0);
    BandwidthJob job{static_cast<uint64_t*>(mem.get()), bytes / 8, true, &sums};
    pool.run(bandwidth_job, &job);
    job.fill = false;

    // Word i holds i, so the total is known: checking it keeps the reads from
    // being optimised away and proves every word was read.
    const size_t n = job.n_words;
    const uint64_t expected = n % 2 == 0 ? uint64_t(n / 2) * uint64_t(n - 1)
                                         : uint64_t(n) * uint64_t((n - 1) / 2);  // mod 2^64, as the sums wrap

    double best = 1e300;
    for (int run = 0; run < runs; ++run) {
        const auto start = Clock::now();
        pool.run(bandwidth_job, &job);
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        uint64_t total = 0;
        for (uint64_t s : sums) total += s;
        MOELITE_ASSERT(total == expected);
        best = std::min(best, seconds);
    }
    BandwidthResult r;
    r.bytes = bytes;
    r.n_threads = n_threads;
    r.runs = runs;
    r.gb_per_s = best > 0 ? double(bytes) / best / 1e9 : 0;
    return r;
}

}  // namespace moelite
