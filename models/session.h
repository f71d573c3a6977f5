// Session: one conversation with a model — its KV cache, where it stands in
// the context, and the statistics of what it computed. The model is shared
// and never changes; everything that does lives here.
//
// eval() runs tokens through the model: the prompt in batches of up to
// n_batch tokens (prefill through mul_mat, not token by token), then one token
// at a time (decode). Context policy: a session never silently drops history;
// eval() of more tokens than the context has room for throws an Error saying
// so, and the caller (chat) starts over or shifts explicitly.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backends/backend.h"
#include "backends/scheduler.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace moelite {

struct SessionOptions {
    int64_t n_ctx = 0;      // 0: the model's training context, capped at 4096
    int64_t n_batch = 512;  // prompt tokens per forward pass
    DType cache_type = DType::F16;
};

// The context length a session of `m` with `o` gets (o.n_ctx, or the model's
// training context capped at 4096).
int64_t context_length(const Model& m, const SessionOptions& o);

// How often and how recently each expert of each MoE layer was chosen: what
// the offloading manager places experts by. Counted on every forward pass.
class ExpertStats {
  public:
    void resize(int64_t n_layer, int64_t n_expert);
    void record(int64_t layer, const int32_t* ids, int64_t n, int64_t step);
    int64_t n_layer() const { return n_layer_; }
    int64_t n_expert() const { return n_expert_; }
    uint64_t count(int64_t layer, int64_t expert) const { return counts_[size_t(layer * n_expert_ + expert)]; }
    // The forward step (token index) at which the expert was last chosen, -1 if never.
    int64_t last_used(int64_t layer, int64_t expert) const { return last_[size_t(layer * n_expert_ + expert)]; }
    void clear();

  private:
    int64_t n_layer_ = 0, n_expert_ = 0;
    std::vector<uint64_t> counts_;
    std::vector<int64_t> last_;
};

struct SessionStats {
    int64_t prompt_tokens = 0;  // tokens evaluated in batches of more than one
    double prompt_seconds = 0;
    int64_t decode_tokens = 0;  // tokens evaluated one at a time
    double decode_seconds = 0;
};

class Session {
  public:
    // `host` is the backend everything runs on for now (the CPU backend).
    Session(std::shared_ptr<const Model> model, Backend& host, const SessionOptions& options = {});

    const Model& model() const { return *model_; }
    int64_t n_ctx() const { return cache_.n_ctx(); }
    int64_t n_past() const { return n_past_; }
    // The tokens in the context, in order (n_past() of them).
    const std::vector<int32_t>& tokens() const { return tokens_; }
    const KvCache& cache() const { return cache_; }
    const SessionStats& stats() const { return stats_; }
    // Expert use (MoE models; empty otherwise). Not cleared by reset().
    const ExpertStats& expert_stats() const { return expert_stats_; }
    void reset_stats() { stats_ = {}; }

    // Runs `tokens` at positions n_past().. and appends them to the context.
    // Writes the logits of the last token ([n_vocab]) or, with all_logits, of
    // every token ([n_tokens x n_vocab], row-major) into *logits.
    void eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>* logits);

    // Forgets the conversation (the cache is cleared).
    void reset();
    // Drops everything after the first n tokens (n <= n_past()).
    void truncate(int64_t n);

  private:
    void eval_batch(const int32_t* tokens, int64_t n, bool all_logits, float* logits_out);

    std::shared_ptr<const Model> model_;
    Backend& host_;
    SessionOptions options_;
    KvCache cache_;
    Scheduler scheduler_;
    int64_t n_past_ = 0;
    std::vector<int32_t> tokens_;
    SessionStats stats_;
    ExpertStats expert_stats_;
    int64_t steps_ = 0;  // tokens evaluated over the session's life
};

}  // namespace moelite
