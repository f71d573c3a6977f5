#include "models/layers.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace moelite {

Tensor* norm_rms(Graph& g, Tensor* x, Tensor* w, float eps) { return g.mul(g.rms_norm(x, eps), w); }

Tensor* linear(Graph& g, Tensor* x, Tensor* w, Tensor* b) {
    Tensor* y = g.mul_mat(w, x);
    return b ? g.add(y, b) : y;
}

Tensor* ffn_swiglu(Graph& g, Tensor* x, Tensor* gate, Tensor* up, Tensor* down) {
    return g.mul_mat(down, g.swiglu(g.mul_mat(gate, x), g.mul_mat(up, x)));
}

namespace {

// The cache rows [pos, pos + n) of every head: [width, n, heads].
Tensor* cache_rows(Graph& g, Tensor* cache, int64_t pos, int64_t n) {
    return g.view(cache, {cache->ne[0], n, cache->ne[2]}, {cache->nb[1], cache->nb[2]}, size_t(pos) * cache->nb[1]);
}

}  // namespace

Tensor* attention_cached(Graph& g, KvCache& cache, int64_t layer, const ForwardInputs& in, Tensor* q, Tensor* k,
                         Tensor* v, float scale) {
    Tensor* ck = cache.k(layer);
    Tensor* cv = cache.v(layer);
    MOELITE_ASSERT(cv != nullptr);
    // [D, heads, T] -> [D, T, heads] to match the cache layout, then store.
    g.build_forward(g.cpy(g.permute(k, 0, 2, 1, 3), cache_rows(g, ck, in.kv_pos, in.n_tokens)));
    g.build_forward(g.cpy(g.permute(v, 0, 2, 1, 3), cache_rows(g, cv, in.kv_pos, in.n_tokens)));
    Tensor* keys = cache_rows(g, ck, 0, in.n_kv);
    Tensor* values = cache_rows(g, cv, 0, in.n_kv);
    Tensor* out = g.flash_attn(q, keys, values, in.mask, scale);  // [Dv, n_head, T]
    return g.reshape(out, {out->ne[0] * out->ne[1], out->ne[2]});
}

Tensor* last_token_only(Graph& g, Tensor* x, const ForwardInputs& in) {
    if (in.all_logits || in.n_tokens == 1) return x;
    return g.view(x, {x->ne[0], 1}, {x->nb[1]}, size_t(in.n_tokens - 1) * x->nb[1]);
}

ForwardInputs forward_inputs(Graph& g, int64_t n_tokens, int64_t kv_pos, bool all_logits) {
    ForwardInputs in;
    in.n_tokens = n_tokens;
    in.kv_pos = kv_pos;
    in.n_kv = kv_pos + n_tokens;
    in.all_logits = all_logits;
    in.tokens = g.new_input(DType::I32, {n_tokens}, "tokens");
    in.positions = g.new_input(DType::I32, {n_tokens}, "positions");
    in.mask = g.new_input(DType::F32, {in.n_kv, n_tokens}, "kq_mask");
    return in;
}

void forward_fill_inputs(const ForwardInputs& in, const int32_t* tokens) {
    std::memcpy(in.tokens->data, tokens, size_t(in.n_tokens) * sizeof(int32_t));
    auto* pos = static_cast<int32_t*>(in.positions->data);
    for (int64_t t = 0; t < in.n_tokens; ++t) pos[t] = int32_t(in.kv_pos + t);
    const float neg_inf = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < in.n_tokens; ++t) {
        float* row = reinterpret_cast<float*>(static_cast<char*>(in.mask->data) + size_t(t) * in.mask->nb[1]);
        const int64_t last = in.kv_pos + t;  // a token sees itself and everything before
        for (int64_t j = 0; j < in.n_kv; ++j) row[j] = j <= last ? 0.0f : neg_inf;
    }
}

Tensor* build_forward(Graph& g, const Model& model, KvCache& cache, const ForwardInputs& in) {
    switch (model.hparams().arch) {
        case Arch::Llama:
        case Arch::Qwen2: return build_llama(g, model, cache, in);
        case Arch::Deepseek2: return build_deepseek2(g, model, cache, in);
    }
    MOELITE_ASSERT(false);
    return nullptr;
}

std::vector<KvLayerShape> kv_layer_shapes(const HParams& hp) {
    std::vector<KvLayerShape> shapes(size_t(hp.n_layer));
    for (auto& s : shapes) {
        if (hp.arch == Arch::Deepseek2) {
            // MLA: the kv latent plus the shared RoPE key, one "head", no V.
            s.k_width = hp.kv_lora_rank + hp.n_rot;
            s.v_width = 0;
            s.n_kv_heads = 1;
            continue;
        }
        s.k_width = hp.head_dim_k;
        s.v_width = hp.head_dim_v;
        s.n_kv_heads = hp.n_head_kv;
    }
    return shapes;
}

}  // namespace moelite
