// Perplexity and KL divergence; the method is described in perplexity.h.
#include "models/perplexity.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/fp16.h"
#include "core/log.h"

namespace moelite {

double RunningMean::error() const {
    if (count < 2) return 0;
    const double m = mean();
    const double var = sum2 / double(count) - m * m;
    return var > 0 ? std::sqrt(var / double(count - 1)) : 0.0;
}

PerplexityResult perplexity_from(const RunningMean& nll, int64_t n_ctx, int64_t n_chunks) {
    PerplexityResult r;
    r.n_ctx = n_ctx;
    r.n_chunks = n_chunks;
    r.count = nll.count;
    r.mean_nll = nll.mean();
    r.ppl = std::exp(r.mean_nll);
    r.ppl_error = r.ppl * nll.error();  // d exp(x) = exp(x) dx
    return r;
}

double percentile_of_sorted(const std::vector<float>& sorted, double fraction) {
    if (sorted.empty()) return 0;
    fraction = std::clamp(fraction, 0.0, 1.0);
    const double pos = fraction * double(sorted.size() - 1);
    const size_t lo = size_t(pos);
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    const double w = pos - double(lo);
    return (1 - w) * double(sorted[lo]) + w * double(sorted[hi]);
}

namespace {

using Clock = std::chrono::steady_clock;

// log(sum(exp(x))) over a row, in double.
double log_sum_exp(const float* x, int64_t n) {
    float max = x[0];
    for (int64_t i = 1; i < n; ++i) max = std::max(max, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - double(max));
    return double(max) + std::log(sum);
}

void check_context(int64_t n_ctx) {
    if (n_ctx < 4) fail("context length %lld is too small: a chunk needs at least 4 tokens", (long long)n_ctx);
    if (n_ctx > (int64_t(1) << 20)) fail("context length %lld is too large", (long long)n_ctx);
}

void warn_if_past_training(const Model& model, int64_t n_ctx) {
    const int64_t train = model.hparams().n_ctx_train;
    if (train > 0 && n_ctx > train)
        MOELITE_LOG_WARN("%s: context %lld is longer than the model was trained for (%lld)", model.path().c_str(),
                         (long long)n_ctx, (long long)train);
}

// Evaluates one chunk in a fresh context; `logits` gets the rows of the scored
// positions n_ctx/2 .. n_ctx-2 ([n_scored x n_vocab]). The first half is
// evaluated without logits and the last token not at all: nothing reads them.
void eval_chunk(Session& session, const int32_t* chunk, int64_t n_ctx, std::vector<float>& logits) {
    const int64_t first = n_ctx / 2;
    session.reset();
    session.eval(std::span<const int32_t>(chunk, size_t(first)), false, nullptr);
    session.eval(std::span<const int32_t>(chunk + first, size_t(n_ctx - 1 - first)), true, &logits);
}

}  // namespace

PerplexityResult compute_perplexity(std::shared_ptr<const Model> model, Backend& backend,
                                    std::span<const int32_t> tokens, const PerplexityOptions& options,
                                    const std::string& save_base, LogprobType save_type,
                                    const PerplexityCallback& progress) {
    const int64_t n_ctx = options.n_ctx;
    check_context(n_ctx);
    if (options.n_chunks < 0) fail("the number of chunks must not be negative");
    const int64_t n_vocab = model->hparams().n_vocab;
    for (size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || int64_t(tokens[i]) >= n_vocab)
            fail("token %zu (%d) is outside the vocabulary of %s (%lld tokens)", i, tokens[i], model->path().c_str(),
                 (long long)n_vocab);
    if (options.bos_id >= n_vocab) fail("BOS id %d is outside the vocabulary", options.bos_id);
    const int64_t available = int64_t(tokens.size()) / n_ctx;
    if (available == 0)
        fail("%zu tokens are not enough for one chunk of %lld (use a shorter context or more text)", tokens.size(),
             (long long)n_ctx);
    const int64_t n_chunks = options.n_chunks > 0 ? std::min(options.n_chunks, available) : available;
    warn_if_past_training(*model, n_ctx);

    // The tokens as evaluated: whole chunks, BOS substituted.
    std::vector<int32_t> evaluated(tokens.begin(), tokens.begin() + n_chunks * n_ctx);
    if (options.bos_id >= 0)
        for (int64_t c = 0; c < n_chunks; ++c) evaluated[size_t(c * n_ctx)] = options.bos_id;

    LogprobHeader header;
    header.type = save_type;
    header.n_vocab = n_vocab;
    header.n_ctx = n_ctx;
    header.n_chunks = n_chunks;
    std::unique_ptr<LogprobWriter> writer;
    if (!save_base.empty()) writer = std::make_unique<LogprobWriter>(save_base, header, evaluated);

    SessionOptions so = options.session;
    so.n_ctx = n_ctx;
    Session session(model, backend, so);
    const int64_t first = n_ctx / 2;
    const int64_t n_scored = header.n_scored();
    std::vector<float> logits, row(static_cast<size_t>(n_vocab));
    RunningMean nll;
    for (int64_t c = 0; c < n_chunks; ++c) {
        const auto start = Clock::now();
        const int32_t* chunk = evaluated.data() + c * n_ctx;
        eval_chunk(session, chunk, n_ctx, logits);
        for (int64_t j = 0; j < n_scored; ++j) {
            const float* x = logits.data() + j * n_vocab;
            const double lse = log_sum_exp(x, n_vocab);
            const int32_t target = chunk[first + j + 1];
            nll.add(lse - double(x[target]));
            if (writer) {
                for (int64_t i = 0; i < n_vocab; ++i) row[size_t(i)] = float(double(x[i]) - lse);
                writer->write_row(row.data());
            }
        }
        if (progress) {
            PerplexityProgress p;
            p.chunk = c + 1;
            p.n_chunks = n_chunks;
            p.ppl = std::exp(nll.mean());
            p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
            progress(p);
        }
    }
    if (writer) writer->commit();
    return perplexity_from(nll, n_ctx, n_chunks);
}

KldResult compute_kl_divergence(std::shared_ptr<const Model> model, Backend& backend, const std::string& base_path,
                                const PerplexityOptions& options, const PerplexityCallback& progress) {
    if (options.n_chunks < 0) fail("the number of chunks must not be negative");
    LogprobReader base(base_path);
    const LogprobHeader& h = base.header();
    const int64_t n_vocab = model->hparams().n_vocab;
    if (h.n_vocab != n_vocab)
        fail("%s: saved for a vocabulary of %lld tokens, but %s has %lld: the models must share a vocabulary",
             base_path.c_str(), (long long)h.n_vocab, model->path().c_str(), (long long)n_vocab);
    const int64_t n_ctx = h.n_ctx;
    const int64_t n_chunks = options.n_chunks > 0 ? std::min(options.n_chunks, h.n_chunks) : h.n_chunks;
    warn_if_past_training(*model, n_ctx);

    SessionOptions so = options.session;
    so.n_ctx = n_ctx;
    Session session(model, backend, so);
    const int64_t first = n_ctx / 2;
    const int64_t n_scored = h.n_scored();
    const bool f16 = h.type == LogprobType::F16;
    std::vector<float> logits, lb(static_cast<size_t>(n_vocab));
    RunningMean nll, nll_base, kld, dp, dp2;
    double sum_nll_nll_base = 0;
    int64_t same_top = 0;
    KldResult r;
    r.kld_sorted.reserve(size_t(n_chunks * n_scored));
    for (int64_t c = 0; c < n_chunks; ++c) {
        const auto start = Clock::now();
        const int32_t* chunk = base.tokens().data() + c * n_ctx;
        eval_chunk(session, chunk, n_ctx, logits);
        for (int64_t j = 0; j < n_scored; ++j) {
            const float* x = logits.data() + j * n_vocab;
            base.read_row(lb.data());
            const double lse = log_sum_exp(x, n_vocab);
            const int32_t target = chunk[first + j + 1];
            const double a = lse - double(x[target]);  // NLL of the model
            const double b = -double(lb[size_t(target)]);  // NLL of the reference
            nll.add(a);
            nll_base.add(b);
            sum_nll_nll_base += a * b;

            double kl = 0;
            int64_t top_base = 0, top_model = 0;
            float best_model = -INFINITY;
            for (int64_t i = 0; i < n_vocab; ++i) {
                const double lbi = double(lb[size_t(i)]);
                const double lqi = double(x[i]) - lse;
                const double pb = std::exp(lbi);
                if (pb > 0) kl += pb * (lbi - lqi);
                if (lb[size_t(i)] > lb[size_t(top_base)]) top_base = i;
                // Compared at the reference's precision (see perplexity.h).
                const float q = f16 ? fp16_to_fp32(fp32_to_fp16(std::clamp(float(lqi), -65504.0f, 0.0f))) : float(lqi);
                if (q > best_model) best_model = q, top_model = i;
            }
            kld.add(kl);
            r.kld_sorted.push_back(float(kl));
            if (top_base == top_model) ++same_top;
            const double d = std::exp(-a) - std::exp(-b);
            dp.add(d);
            dp2.add(d * d);
        }
        if (progress) {
            PerplexityProgress p;
            p.chunk = c + 1;
            p.n_chunks = n_chunks;
            p.ppl = std::exp(nll.mean());
            p.kld_mean = kld.mean();
            p.same_top = double(same_top) / double(kld.count);
            p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
            progress(p);
        }
    }

    r.ppl = perplexity_from(nll, n_ctx, n_chunks);
    r.ppl_base = perplexity_from(nll_base, n_ctx, n_chunks);
    const auto n = double(nll.count);
    // Covariance of the two mean NLLs (not of single positions): it enters
    // the error of their difference the way each one's squared error does.
    const double cov = n > 1 ? (sum_nll_nll_base / n - nll.mean() * nll_base.mean()) / (n - 1) : 0.0;
    const double ea = nll.error(), eb = nll_base.error();
    r.log_ppl_ratio = nll.mean() - nll_base.mean();
    r.log_ppl_ratio_error = std::sqrt(std::max(0.0, ea * ea + eb * eb - 2 * cov));
    r.log_ppl_correlation = ea > 0 && eb > 0 ? cov / (ea * eb) : 1.0;
    r.kld_mean = kld.mean();
    r.kld_error = kld.error();
    std::sort(r.kld_sorted.begin(), r.kld_sorted.end());
    r.same_top = n > 0 ? double(same_top) / n : 0.0;
    r.same_top_error = n > 1 ? std::sqrt(r.same_top * (1 - r.same_top) / (n - 1)) : 0.0;
    r.dp_mean = dp.mean();
    r.dp_error = dp.error();
    r.dp_rms = std::sqrt(dp2.mean());
    return r;
}

std::vector<int32_t> read_token_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) fail("%s: cannot read", path.c_str());
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < text.size()) {
        if (std::isspace(static_cast<unsigned char>(text[i]))) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
        const std::string item = text.substr(i, j - i);
        bool ok = item.size() <= 10;
        int64_t v = 0;
        for (char ch : item) {
            ok = ok && ch >= '0' && ch <= '9';
            if (ok) v = v * 10 + (ch - '0');
        }
        if (!ok || v > INT32_MAX) {
            std::string shown = item.substr(0, 32);
            for (char& ch : shown)
                if (!std::isprint(static_cast<unsigned char>(ch))) ch = '?';
            fail("%s: '%s' at byte %zu is not a token id", path.c_str(), shown.c_str(), i);
        }
        ids.push_back(int32_t(v));
        i = j;
    }
    if (ids.empty()) fail("%s: no token ids in the file", path.c_str());
    return ids;
}

}  // namespace moelite
