// Perplexity of a model on a token sequence, and the KL divergence of a
// model's next-token distributions from a reference model's, saved earlier
// (models/logprob_file.h). Quantization quality is measured with these.
//
// Method (the one llama.cpp's perplexity tool uses, so numbers compare):
// the tokens are cut into chunks of n_ctx; each chunk is evaluated in a fresh
// context, and only the second half is scored — the predictions at chunk
// positions n_ctx/2 .. n_ctx-2 of tokens n_ctx/2+1 .. n_ctx-1 — so every
// scored token has at least n_ctx/2 tokens of context. PPL = exp(mean NLL)
// over all scored tokens; its error is exp(mean) times the standard error of
// the mean NLL, sqrt(var / (count - 1)). With a BOS id, the first token of
// each chunk is replaced by BOS (as llama.cpp does for models that add one).
//
// KL divergence: for each scored position, KL(base || model) =
// sum_i p_base(i) (log p_base(i) - log p_model(i)) over the vocabulary; the
// mean with its standard error, and the fraction of positions where both
// models put the same token on top. For that comparison the model's
// log-probabilities are rounded as the reference file stores them (f32 or
// f16; ties go to the lower id in both), so a model compared with its own
// reference agrees on every position.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "models/logprob_file.h"
#include "models/model.h"
#include "models/session.h"

namespace moelite {

struct PerplexityOptions {
    int64_t n_ctx = 512;     // tokens per chunk (at least 4); in KL mode, taken from the reference file
    int64_t n_chunks = 0;    // 0: as many as the tokens fill
    int32_t bos_id = -1;     // >= 0: replaces the first token of every chunk
    SessionOptions session;  // n_batch and cache_type are used; n_ctx is set to n_ctx
};

// Running sums of a per-position quantity, for a mean and its standard error.
struct RunningMean {
    double sum = 0, sum2 = 0;
    int64_t count = 0;
    void add(double v) {
        sum += v;
        sum2 += v * v;
        ++count;
    }
    double mean() const { return count ? sum / double(count) : 0.0; }
    // Standard error of the mean; 0 with fewer than two values.
    double error() const;
};

struct PerplexityResult {
    int64_t n_ctx = 0;
    int64_t n_chunks = 0;
    int64_t count = 0;  // scored positions
    double mean_nll = 0;
    double ppl = 0;
    double ppl_error = 0;
};

PerplexityResult perplexity_from(const RunningMean& nll, int64_t n_ctx, int64_t n_chunks);

struct PerplexityProgress {
    int64_t chunk = 0;  // chunks done (1-based)
    int64_t n_chunks = 0;
    double ppl = 0;        // running
    double kld_mean = 0;   // running, KL mode only
    double same_top = 0;   // running fraction, KL mode only
    double seconds = 0;    // for the chunk just done
};
using PerplexityCallback = std::function<void(const PerplexityProgress&)>;

// Perplexity of `tokens`. With save_base non-empty, also writes the
// log-probabilities of every scored position there (the reference file of
// the KL mode). Throws Error on too few tokens, a context under 4, a token
// outside the vocabulary.
PerplexityResult compute_perplexity(std::shared_ptr<const Model> model, Backend& backend,
                                    std::span<const int32_t> tokens, const PerplexityOptions& options,
                                    const std::string& save_base = "", LogprobType save_type = LogprobType::F16,
                                    const PerplexityCallback& progress = {});

struct KldResult {
    PerplexityResult ppl;       // of the model
    PerplexityResult ppl_base;  // of the reference
    double log_ppl_ratio = 0, log_ppl_ratio_error = 0;  // ln(PPL / PPL_base)
    double log_ppl_correlation = 0;  // of the per-position NLLs of the two
    double kld_mean = 0, kld_error = 0;
    std::vector<float> kld_sorted;  // per position, ascending (for percentiles)
    double same_top = 0, same_top_error = 0;  // fraction of positions with the same top token
    double dp_mean = 0, dp_error = 0;  // mean of p_model(token) - p_base(token)
    double dp_rms = 0;
};

// Linear interpolation between the closest ranks; fraction in [0, 1].
double percentile_of_sorted(const std::vector<float>& sorted, double fraction);

// Compares `model` with the reference saved in base_path (tokens and n_ctx
// come from it; options.n_chunks limits how many of its chunks are used).
// Throws Error when the file is unreadable or was saved for another
// vocabulary size.
KldResult compute_kl_divergence(std::shared_ptr<const Model> model, Backend& backend, const std::string& base_path,
                                const PerplexityOptions& options, const PerplexityCallback& progress = {});

// Whitespace-separated token ids from a text file (the --tokens-file input).
std::vector<int32_t> read_token_file(const std::string& path);

}  // namespace moelite
