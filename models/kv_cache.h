// KvCache: the keys and values of past tokens, per layer, owned by a session.
//
// Layout per layer: K is [k_width, n_ctx, n_kv_heads] and V is
// [v_width, n_ctx, n_kv_heads] (ne order), so that one head's keys for
// positions [0, n) form a plain strided view, the shape flash_attn reads.
// Dense models store per-head keys and values; deepseek2 (MLA) stores one
// "head" holding the compressed latent plus the shared RoPE key, and no V.
// Element type F16 by default; F32 and Q8_0 selectable (Q8_0 needs widths
// that are multiples of 32). The memory is zeroed, so unwritten positions
// hold finite values (they are masked, but 0 * NaN would still poison sums).
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "core/tensor.h"

namespace moelite {

struct KvLayerShape {
    int64_t k_width = 0;
    int64_t v_width = 0;  // 0: no V stream (MLA)
    int64_t n_kv_heads = 1;
};

class KvCache {
public:
    KvCache(const std::vector<KvLayerShape>& layers, int64_t n_ctx, DType type, Backend& backend);

    int64_t n_ctx() const { return n_ctx_; }
    DType type() const { return type_; }
    int64_t n_layer() const { return int64_t(k_.size()); }
    Tensor* k(int64_t layer) const { return k_[size_t(layer)]; }
    Tensor* v(int64_t layer) const { return v_[size_t(layer)]; }  // nullptr without a V stream
    size_t bytes() const;
    // Bytes one token takes in all layers.
    size_t bytes_per_token() const;
    // Zeroes the memory (a new conversation).
    void clear();

private:
    int64_t n_ctx_;
    DType type_;
    Backend& backend_;
    std::unique_ptr<Buffer> buffer_;
    std::deque<Tensor> tensors_;
    std::vector<Tensor*> k_, v_;
};

}  // namespace moelite
