// Which bytes of the weights a run read: the figure resident memory is judged
// against when weights are memory-mapped (bench/moe-rss.sh). Dense weights are
// read whole on every token; of the token embedding only the rows of the
// tokens seen; of each MoE layer's stacked experts (ffn_*_exps, one slice per
// expert) only the slices of the experts the router chose (ExpertStats).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "models/model.h"
#include "models/session.h"

namespace moelite {

struct WeightUse {
    size_t file_bytes = 0;       // the whole file (metadata included)
    size_t weight_bytes = 0;     // all weights
    size_t dense_bytes = 0;      // read whole: attention, norms, dense and shared FFN, routers, output
    size_t embedding_bytes = 0;  // token_embd rows of the distinct tokens (whole when tied to the output)
    size_t expert_bytes = 0;     // slices of the chosen experts
    int64_t experts_chosen = 0;  // distinct (layer, expert) pairs chosen at least once
    int64_t experts_total = 0;   // MoE layers x experts
    size_t touched_bytes() const { return dense_bytes + embedding_bytes + expert_bytes; }
};

// What a run reads when the token embedding gives `embedding_rows` rows (the
// whole of it when tied to the output) and MoE layer `layer` reads
// `experts_read(layer)` expert slices. The one classification of the weights
// both figures below use.
WeightUse weights_read(const Model& model, size_t embedding_rows, const std::function<int64_t(int64_t)>& experts_read);

// `tokens`: every token the model evaluated. `experts`: the session's counts.
WeightUse weight_use(const Model& model, const ExpertStats& experts, std::span<const int32_t> tokens);

}  // namespace moelite
