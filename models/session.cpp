#include "models/session.h"

#include <algorithm>

#include "core/error.h"
#include "models/forward.h"

namespace moelite {
int64_t context_length(const Model& m, const SessionOptions& o) {
    if (o.n_ctx > 0) return o.n_ctx;
    return std::min<int64_t>(m.hparams().n_ctx_train > 0 ? m.hparams().n_ctx_train : 4096, 4096);
}

Session::Session(std::shared_ptr<const Model> model, Backend& host, const SessionOptions& options)
    : model_(std::move(model)),
      host_(host),
      options_(options),
      cache_(kv_layer_shapes(model_->hparams()), context_length(*model_, options), options.cache_type, host),
      scheduler_({&host}) {
    if (options_.n_batch <= 0) fail("batch size must be positive");
    const HParams& hp = model_->hparams();
    if (hp.n_expert > 0) expert_stats_.resize(hp.n_layer, hp.n_expert);
}

void ExpertStats::resize(int64_t n_layer, int64_t n_expert) {
    n_layer_ = n_layer;
    n_expert_ = n_expert;
    counts_.assign(size_t(n_layer * n_expert), 0);
    last_.assign(size_t(n_layer * n_expert), -1);
}

void ExpertStats::record(int64_t layer, const int32_t* ids, int64_t n, int64_t step) {
    for (int64_t i = 0; i < n; ++i) {
        const int32_t e = ids[i];
        MOELITE_ASSERT(e >= 0 && e < n_expert_);
        ++counts_[size_t(layer * n_expert_ + e)];
        last_[size_t(layer * n_expert_ + e)] = step;
    }
}

void ExpertStats::clear() {
    resize(n_layer_, n_expert_);
}

void Session::reset() {
    n_past_ = 0;
    tokens_.clear();
    cache_.clear();
}

void Session::truncate(int64_t n) {
    MOELITE_ASSERT(n >= 0 && n <= n_past_);
    n_past_ = n;  // later positions are overwritten before they are read again
    tokens_.resize(size_t(n));
}

void Session::eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits) {
    const int64_t n = int64_t(tokens.size());
    if (n == 0) fail("nothing to evaluate");
    if (n_past_ + n > cache_.n_ctx())
        fail("context full: %lld tokens in the context plus %lld new exceed its %lld", (long long)n_past_, (long long)n,
             (long long)cache_.n_ctx());
    const int64_t n_vocab = model_->hparams().n_vocab;
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab) fail("token id %d is outside the vocabulary (%lld)", t, (long long)n_vocab);
    if (logits) logits->assign(size_t(all_logits ? n : 1) * size_t(n_vocab), 0.0f);

    const auto start = std::chrono::steady_clock::now();
    for (int64_t done = 0; done < n;) {
        const int64_t chunk = std::min(options_.n_batch, n - done);
        const bool last_chunk = done + chunk == n;
        float* out = nullptr;
        if (logits)
            out =
                all_logits ? logits->data() + size_t(done) * size_t(n_vocab) : (last_chunk ? logits->data() : nullptr);
        eval_batch(tokens.data() + done, chunk, all_logits, out);
        done += chunk;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (n > 1) {
        stats_.prompt_tokens += n;
        stats_.prompt_seconds += seconds;
    } else {
        stats_.decode_tokens += n;
        stats_.decode_seconds += seconds;
    }
}

void Session::eval_batch(const int32_t* tokens, int64_t n, bool all_logits, float* logits_out) {
    Graph g;
    ForwardInputs in = forward_inputs(g, n, n_past_, all_logits);
    std::vector<std::pair<int64_t, Tensor*>> expert_ids;
    if (expert_stats_.n_expert() > 0) in.expert_ids = &expert_ids;
    Tensor* logits = build_forward(g, *model_, cache_, in);
    g.build_forward(logits);
    scheduler_.plan(g);
    forward_fill_inputs(in, tokens);
    scheduler_.compute(g);
    if (logits_out) {
        Backend* where = scheduler_.backend_of(logits);
        (where ? *where : host_).get_tensor(*logits, logits_out, 0, logits->nbytes());
    }
    std::vector<int32_t> ids;
    for (const auto& [layer, t] : expert_ids) {
        // ids [k, T]: token t's choices are row t.
        ids.resize(size_t(t->nelements()));
        Backend* where = scheduler_.backend_of(t);
        (where ? *where : host_).get_tensor(*t, ids.data(), 0, ids.size() * sizeof(int32_t));
        for (int64_t tok = 0; tok < t->ne[1]; ++tok)
            expert_stats_.record(layer, ids.data() + tok * t->ne[0], t->ne[0], steps_ + tok);
    }
    steps_ += n;
    n_past_ += n;
    tokens_.insert(tokens_.end(), tokens, tokens + n);
}

}  // namespace moelite
