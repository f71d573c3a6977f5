// Speed measurements: prompt processing (pp) and generation (tg) throughput
// of a model, the memory-read bandwidth of the machine, and the decode
// roofline that the two give together. `moelite bench` prints these; the
// numbers follow llama-bench's conventions so they line up with it:
//  - pp<N>: a fresh context evaluates N random tokens as one prompt; the time
//    is the whole eval (prefill in batches of n_batch);
//  - tg<N>: a fresh context decodes N random tokens one at a time from
//    position 0;
//  - with a depth d (llama-bench's -d), the context first holds d random
//    tokens, evaluated once and not timed, and each run starts from them
//    (the cache truncated back to d): the test reads "pp512 @ d4096";
//  - each test runs once unmeasured (warm-up: pages of the mmap'd file faulted
//    in, scratch sized), then `repetitions` times; the rate of each run is
//    tokens / seconds, and the mean and the sample standard deviation are
//    taken over those per-run rates (llama-bench's avg_ts / stddev_ts).
//
// The roofline of decode is bandwidth / bytes read per generated token:
// every weight is read once per token except token_embd, of which one row is
// read (unless the output projection is tied to it, then all of it), and for
// MoE expert tensors only n_expert_used of n_expert experts. The KV cache and
// activations are not counted (small without a depth), so the roofline is an
// upper bound on tg t/s and its fraction a lower bound on how well the weights
// stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "models/model.h"
#include "models/session.h"

namespace moelite {

struct BenchResult {
    std::string test;                // "pp512", "tg128", "tg128 @ d4096"
    int64_t n_prompt = 0;            // tokens of the prompt test (0 for tg)
    int64_t n_gen = 0;               // tokens of the generation test (0 for pp)
    int64_t n_depth = 0;             // tokens in the context before each run
    std::vector<double> samples_ns;  // wall time of each measured run
    std::vector<double> samples_ts;  // tokens per second of each run

    double avg_ns() const;
    double stddev_ns() const;
    double avg_ts() const;
    double stddev_ts() const;
};

// Mean and sample standard deviation (n - 1; 0 for fewer than two values).
double mean_of(const std::vector<double>& values);
double stddev_of(const std::vector<double>& values);

struct BenchOptions {
    int repetitions = 3;     // measured runs after the warm-up
    uint64_t seed = 1234;    // of the random tokens
    int64_t n_depth = 0;     // tokens in the context before each run (see the header comment)
    SessionOptions session;  // n_batch and cache_type are used; n_ctx is set per test
};

// pp: a fresh context (or one holding n_depth tokens) evaluates n_prompt random tokens as one prompt.
BenchResult bench_prompt(std::shared_ptr<const Model> model, Backend& backend, int64_t n_prompt,
                         const BenchOptions& options);
// tg: a fresh context (or one holding n_depth tokens) decodes n_gen random tokens one at a time.
BenchResult bench_generation(std::shared_ptr<const Model> model, Backend& backend, int64_t n_gen,
                             const BenchOptions& options);

// Bytes of weight data read to generate one token (see the header comment).
size_t decode_bytes_per_token(const Model& model);
// Parameters (weight elements) of the model, as llama-bench's model_n_params.
int64_t model_n_params(const Model& model);

struct BandwidthResult {
    double gb_per_s = 0;  // best run, 1e9 bytes per second
    size_t bytes = 0;     // buffer read per run
    int n_threads = 0;
    int runs = 0;
};

// A streaming read of a `bytes` buffer (make it much larger than the last
// level cache) by n_threads threads, each summing the 64-bit words of its
// contiguous share; the buffer is written first by the same threads (first
// touch). Best of `runs` passes. Throws Error if the buffer cannot be had.
BandwidthResult measure_read_bandwidth(int n_threads, size_t bytes = size_t(1) << 30, int runs = 5);

}  // namespace moelite
