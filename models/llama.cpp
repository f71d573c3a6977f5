// The dense decoder of the R1 distills: `llama` (R1-Distill-Llama, Llama-3.1
// with llama3 rope frequency factors) and `qwen2` (R1-Distill-Qwen: q/k/v
// biases, NEOX RoPE). Read top to bottom, per layer:
//
//   h = x + Wo · attention(rope(Wq·n(x) + bq), rope(Wk·n(x) + bk), Wv·n(x) + bv)
//   x = h + Wdown · (silu(Wgate·n(h)) * Wup·n(h))
//
// with n() the RMS norm of each block; logits = Woutput · n(x). RoPE pairs:
// llama.cpp's converter permutes llama's q/k rows so adjacent elements form
// the rotated pairs (normal mode); qwen2 keeps Hugging Face's rotate-half
// layout (NEOX mode). GQA: query head h reads kv head h / (n_head / n_head_kv).
#include <cmath>

#include "models/forward.h"
#include "models/layers.h"

namespace moelite {

Tensor* build_llama(Graph& g, const Model& m, KvCache& cache, const ForwardInputs& in) {
    const HParams& hp = m.hparams();
    const int64_t T = in.n_tokens;
    const float scale = 1.0f / std::sqrt(float(hp.head_dim_k));

    RopeParams rope;
    rope.n_dims = int32_t(hp.n_rot);
    rope.mode = hp.arch == Arch::Qwen2 ? RopeMode::Neox : RopeMode::Normal;
    rope.n_ctx_orig = int32_t(hp.rope_orig_ctx ? hp.rope_orig_ctx : hp.n_ctx_train);
    rope.freq_base = hp.rope_freq_base;
    // (Llama 3's scaling is the rope_freqs factors below, not a frequency scale.)
    const bool scaled = hp.rope_scaling == RopeScaling::Linear || hp.rope_scaling == RopeScaling::Yarn;
    rope.freq_scale = scaled ? 1.0f / hp.rope_scaling_factor : 1.0f;
    // YaRN as llama.cpp applies it to these architectures: interpolation
    // blended in by the ramp over the original context, and the rope's own
    // magnitude factor (1 + 0.1 ln factor) kept.
    if (hp.rope_scaling == RopeScaling::Yarn) {
        rope.ext_factor = 1.0f;
        rope.beta_fast = hp.rope_yarn_beta_fast;
        rope.beta_slow = hp.rope_yarn_beta_slow;
    }
    Tensor* freq_factors = m.weight(TensorRole::RopeFreqs);  // llama3 scaling, when present

    auto W = [&](TensorRole role, int64_t il) { return m.weight(role, il); };

    Tensor* x = g.get_rows(m.weight(TensorRole::TokenEmbd), in.tokens);  // [n_embd, T]
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        Tensor* h = norm_rms(g, x, W(TensorRole::AttnNorm, il), hp.rms_eps);
        Tensor* q = linear(g, h, W(TensorRole::AttnQ, il), W(TensorRole::AttnQBias, il));
        Tensor* k = linear(g, h, W(TensorRole::AttnK, il), W(TensorRole::AttnKBias, il));
        Tensor* v = linear(g, h, W(TensorRole::AttnV, il), W(TensorRole::AttnVBias, il));
        q = g.rope(g.reshape(q, {hp.head_dim_k, hp.n_head, T}), in.positions, freq_factors, rope);
        k = g.rope(g.reshape(k, {hp.head_dim_k, hp.n_head_kv, T}), in.positions, freq_factors, rope);
        v = g.reshape(v, {hp.head_dim_v, hp.n_head_kv, T});
        Tensor* attn = attention_cached(g, cache, il, in, q, k, v, scale);
        x = g.add(x, linear(g, attn, W(TensorRole::AttnOutput, il)));

        h = norm_rms(g, x, W(TensorRole::FfnNorm, il), hp.rms_eps);
        x = g.add(x, ffn_swiglu(g, h, W(TensorRole::FfnGate, il), W(TensorRole::FfnUp, il), W(TensorRole::FfnDown, il)));
    }
    x = last_token_only(g, x, in);
    x = norm_rms(g, x, m.weight(TensorRole::OutputNorm), hp.rms_eps);
    Tensor* output = m.weight(TensorRole::Output);
    return g.mul_mat(output ? output : m.weight(TensorRole::TokenEmbd), x);  // tied embeddings
}

}  // namespace moelite
