// The forward pass of one batch: what every architecture's graph builder
// takes (inputs, cache, model) and returns (the logits node).
//
// A batch of T tokens sits at cache positions [kv_pos, kv_pos + T); attention
// reads positions [0, n_kv) with n_kv = kv_pos + T, under a causal mask.
#pragma once

#include <utility>
#include <vector>

#include "core/graph.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace moelite {

struct ForwardInputs {
    Tensor* tokens = nullptr;     // I32 [T]
    Tensor* positions = nullptr;  // I32 [T]
    Tensor* mask = nullptr;       // F32 [n_kv, T]: 0 or -inf
    int64_t n_tokens = 0;
    int64_t kv_pos = 0;
    int64_t n_kv = 0;
    bool all_logits = false;      // logits of every token, or of the last only
    // Filled by MoE builders: each MoE layer's chosen expert ids (I32 [k, T]),
    // kept as graph outputs so the session can count expert use.
    std::vector<std::pair<int64_t, Tensor*>>* expert_ids = nullptr;
};

// Declares the inputs of a batch in `g` (their data is filled after planning).
ForwardInputs forward_inputs(Graph& g, int64_t n_tokens, int64_t kv_pos, bool all_logits);
// Fills the inputs' memory: token ids, positions kv_pos.., the causal mask.
void forward_fill_inputs(const ForwardInputs& in, const int32_t* tokens);

// Builds the model's graph for one batch; returns F32 logits [n_vocab, T or 1].
Tensor* build_forward(Graph& g, const Model& model, KvCache& cache, const ForwardInputs& in);

// Per-architecture builders (models/llama.cpp, models/deepseek2.cpp).
Tensor* build_llama(Graph& g, const Model& model, KvCache& cache, const ForwardInputs& in);
Tensor* build_deepseek2(Graph& g, const Model& model, KvCache& cache, const ForwardInputs& in);

// The cache layout each architecture needs.
std::vector<KvLayerShape> kv_layer_shapes(const HParams& hp);

}  // namespace moelite
