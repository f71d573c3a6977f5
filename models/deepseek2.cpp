// DeepSeek-V2 / V2-Lite / V3 / R1 (`deepseek2`): Multi-head Latent Attention
// and a mixture of experts. The maths follows DeepSeek's inference/model.py.
//
// Attention (MLA), per layer:
//   q      = Wq_b · norm(Wq_a · n(x))        (or Wq · n(x) without a q LoRA)
//   q      = [q_nope | q_pe] per head;  q_pe rotated (adjacent pairs, YaRN)
//   [c | k_pe] = Wkv_a · n(x);  c = norm(c) is the kv latent; k_pe rotated,
//   shared by every head. The cache stores [c | k_pe] only (kv_lora + rope
//   values per token and layer).
//   Absorbed form (files with attn_k_b / attn_v_b, llama.cpp's current layout):
//     score_h(j) = (Wk_b,h^T q_nope,h) · c_j + q_pe,h · k_pe,j
//     out_h      = Wv_b,h · sum_j p_h(j) c_j
//   Expanded form (files with one attn_kv_b): k_nope and v of every cached
//   position are rebuilt from the latents each step, then plain attention.
//   Softmax scale: mscale^2 / sqrt(qk_nope + qk_rope), mscale = 1 + 0.1 *
//   mscale_all_dim * ln(factor) with YaRN (GGUF keeps 0.1 * mscale_all_dim as
//   rope.scaling.yarn_log_multiplier); the rotation itself is not rescaled, so
//   the rope's own YaRN magnitude factor is cancelled through attn_factor.
//
// Experts: router scores s = softmax or sigmoid(Wg · n(x)); experts are chosen
// on s + exp_probs_b (the bias only selects, never weighs), limited to the
// best expert groups (group score: sum of the top 2 biased scores for sigmoid
// routing, the top 1 for softmax); the mixing weights are the unbiased s of
// the chosen experts, normalised to sum 1 when the model asks, times the
// routed scaling factor. Shared experts are always added with weight 1; the
// first leading_dense_block_count layers have a dense FFN instead.
#include <cmath>

#include "core/error.h"
#include "models/forward.h"
#include "models/layers.h"

namespace moelite {
namespace {

struct MlaDims {
    int64_t n_head, nope, rope, qk, v, kv_lora;
};

// Rows [pos, pos + n) of a cache tensor [width, n_ctx, 1], first `width` values.
Tensor* latent_rows(Graph& g, Tensor* cache, int64_t width, int64_t n, size_t offset_values = 0) {
    const size_t offset = offset_values / size_t(dtype_block_size(cache->type)) * dtype_block_bytes(cache->type);
    return g.view(cache, {width, n, 1}, {cache->nb[1], cache->nb[2]}, offset);
}

Tensor* attention_absorbed(Graph& g, const Model& m, Tensor* cache, int64_t il, const ForwardInputs& in,
                           const MlaDims& d, Tensor* q_nope, Tensor* q_pe, float scale) {
    // q_nope [nope, H, T] -> per head [nope, T, H]; absorb Wk_b: [kv_lora, T, H].
    Tensor* q_abs = g.mul_mat(m.weight(TensorRole::AttnKB, il), g.permute(q_nope, 0, 2, 1, 3));
    Tensor* q = g.concat(g.cont(g.permute(q_abs, 0, 2, 1, 3)), q_pe, 0);  // [kv_lora + rope, H, T]
    Tensor* keys = latent_rows(g, cache, d.kv_lora + d.rope, in.n_kv);
    Tensor* values = latent_rows(g, cache, d.kv_lora, in.n_kv);
    Tensor* out = g.flash_attn(q, keys, values, in.mask, scale);  // [kv_lora, H, T]
    Tensor* o = g.mul_mat(m.weight(TensorRole::AttnVB, il), g.permute(out, 0, 2, 1, 3));  // [v, T, H]
    o = g.cont(g.permute(o, 0, 2, 1, 3));                                               // [v, H, T]
    return g.reshape(o, {d.v * d.n_head, in.n_tokens});
}

Tensor* attention_expanded(Graph& g, const Model& m, Tensor* cache, int64_t il, const ForwardInputs& in,
                           const MlaDims& d, Tensor* q_nope, Tensor* q_pe, float scale) {
    if (dtype_is_quantized(cache->type))
        fail("%s: this file stores attn_kv_b unsplit, which needs an f16 or f32 cache (not %s)", m.path().c_str(),
             dtype_name(cache->type));
    Tensor* latents = g.cont(latent_rows(g, cache, d.kv_lora, in.n_kv));  // [kv_lora, n_kv, 1] F32
    latents = g.reshape(latents, {d.kv_lora, in.n_kv});
    Tensor* kv = g.mul_mat(m.weight(TensorRole::AttnKvB, il), latents);  // [H * (nope + v), n_kv]
    kv = g.reshape(kv, {d.nope + d.v, d.n_head, in.n_kv});
    Tensor* k_nope = g.view(kv, {d.nope, d.n_head, in.n_kv}, {kv->nb[1], kv->nb[2]}, 0);
    Tensor* v = g.view(kv, {d.v, d.n_head, in.n_kv}, {kv->nb[1], kv->nb[2]}, size_t(d.nope) * sizeof(float));
    k_nope = g.cont(g.permute(k_nope, 0, 2, 1, 3));  // [nope, n_kv, H]
    Tensor* v_t = g.cont(g.permute(v, 1, 2, 0, 3));  // [n_kv, v, H]
    Tensor* k_pe = g.cont(latent_rows(g, cache, d.rope, in.n_kv, size_t(d.kv_lora)));  // [rope, n_kv, 1]

    Tensor* kq = g.mul_mat(k_nope, g.permute(q_nope, 0, 2, 1, 3));            // [n_kv, T, H]
    kq = g.add(kq, g.mul_mat(k_pe, g.cont(g.permute(q_pe, 0, 2, 1, 3))));     // + the RoPE part
    kq = g.soft_max(kq, in.mask, scale);
    Tensor* o = g.mul_mat(v_t, kq);                  // [v, T, H]
    o = g.cont(g.permute(o, 0, 2, 1, 3));            // [v, H, T]
    return g.reshape(o, {d.v * d.n_head, in.n_tokens});
}

Tensor* moe(Graph& g, const Model& m, int64_t il, Tensor* h, const ForwardInputs& in) {
    const HParams& hp = m.hparams();
    const int64_t T = h->ne[1], k = hp.n_expert_used;
    Tensor* logits = g.mul_mat(m.weight(TensorRole::FfnGateInp, il), h);  // [n_expert, T]
    const bool sigmoid = hp.expert_gating == ExpertGating::Sigmoid;
    Tensor* probs = sigmoid ? g.sigmoid(logits) : g.soft_max(logits, nullptr, 1.0f);
    Tensor* select = probs;
    if (Tensor* bias = m.weight(TensorRole::FfnExpProbsB, il)) select = g.add(probs, bias);
    Tensor* ids = g.top_k_grouped(select, int(k), int(hp.n_expert_groups), int(hp.n_expert_groups_used),
                                  sigmoid ? 2 : 1);  // [k, T]
    if (in.expert_ids) {
        g.build_forward(ids);  // an output: it survives the pass for the statistics
        in.expert_ids->push_back({il, ids});
    }
    Tensor* w = g.get_rows(g.reshape(probs, {1, hp.n_expert, T}), ids);  // [1, k, T], unbiased
    if (hp.expert_weights_norm) w = g.div(w, g.reshape(g.sum_rows(g.reshape(w, {k, T})), {1, 1, T}));
    if (hp.expert_weights_scale != 1.0f) w = g.scale(w, hp.expert_weights_scale);

    Tensor* x = g.reshape(h, {hp.n_embd, 1, T});
    Tensor* up = g.mul_mat_id(m.weight(TensorRole::FfnUpExps, il), x, ids);      // [n_ff_exp, k, T]
    Tensor* gate = g.mul_mat_id(m.weight(TensorRole::FfnGateExps, il), x, ids);
    Tensor* down = g.mul_mat_id(m.weight(TensorRole::FfnDownExps, il), g.swiglu(gate, up), ids);  // [n_embd, k, T]
    down = g.mul(down, w);
    Tensor* out = nullptr;
    for (int64_t j = 0; j < k; ++j) {
        Tensor* part = g.view(down, {hp.n_embd, T}, {down->nb[2]}, size_t(j) * down->nb[1]);
        out = out ? g.add(out, part) : part;
    }
    if (hp.n_expert_shared > 0)
        out = g.add(out, ffn_swiglu(g, h, m.weight(TensorRole::FfnGateShexp, il), m.weight(TensorRole::FfnUpShexp, il),
                                    m.weight(TensorRole::FfnDownShexp, il)));
    return out;
}

}  // namespace

Tensor* build_deepseek2(Graph& g, const Model& m, KvCache& cache, const ForwardInputs& in) {
    const HParams& hp = m.hparams();
    const int64_t T = in.n_tokens;
    const MlaDims d{hp.n_head, hp.qk_nope_dim(), hp.qk_rope_dim(), hp.qk_head_dim(), hp.v_head_dim(), hp.kv_lora_rank};

    RopeParams rope;
    rope.n_dims = int32_t(d.rope);
    rope.mode = RopeMode::Normal;
    rope.n_ctx_orig = int32_t(hp.rope_orig_ctx ? hp.rope_orig_ctx : hp.n_ctx_train);
    rope.freq_base = hp.rope_freq_base;
    float scale = 1.0f / std::sqrt(float(d.qk));
    if (hp.rope_scaling == RopeScaling::Yarn && hp.rope_scaling_factor > 1.0f) {
        const float ln_factor = std::log(hp.rope_scaling_factor);
        rope.freq_scale = 1.0f / hp.rope_scaling_factor;
        rope.ext_factor = 1.0f;
        rope.beta_fast = hp.rope_yarn_beta_fast;
        rope.beta_slow = hp.rope_yarn_beta_slow;
        rope.attn_factor = 1.0f / (1.0f + 0.1f * ln_factor);  // cancels the rope's own magnitude factor
        const float mscale = 1.0f + hp.rope_yarn_log_mul * ln_factor;
        scale *= mscale * mscale;
    } else if (hp.rope_scaling == RopeScaling::Linear) {
        rope.freq_scale = 1.0f / hp.rope_scaling_factor;
    }

    auto W = [&](TensorRole role, int64_t il) { return m.weight(role, il); };
    Tensor* x = g.get_rows(m.weight(TensorRole::TokenEmbd), in.tokens);  // [n_embd, T]
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        Tensor* h = norm_rms(g, x, W(TensorRole::AttnNorm, il), hp.rms_eps);

        Tensor* q = hp.q_lora_rank
                        ? g.mul_mat(W(TensorRole::AttnQB, il),
                                    norm_rms(g, g.mul_mat(W(TensorRole::AttnQA, il), h), W(TensorRole::AttnQANorm, il),
                                             hp.rms_eps))
                        : g.mul_mat(W(TensorRole::AttnQ, il), h);
        q = g.reshape(q, {d.qk, d.n_head, T});
        Tensor* q_nope = g.view(q, {d.nope, d.n_head, T}, {q->nb[1], q->nb[2]}, 0);
        Tensor* q_pe = g.view(q, {d.rope, d.n_head, T}, {q->nb[1], q->nb[2]}, size_t(d.nope) * sizeof(float));
        q_pe = g.rope(g.cont(q_pe), in.positions, nullptr, rope);

        Tensor* kv = g.mul_mat(W(TensorRole::AttnKvAMqa, il), h);  // [kv_lora + rope, T]
        Tensor* c = g.view(kv, {d.kv_lora, T}, {kv->nb[1]}, 0);
        c = norm_rms(g, g.cont(c), W(TensorRole::AttnKvANorm, il), hp.rms_eps);
        Tensor* k_pe = g.view(kv, {d.rope, 1, T}, {kv->nb[1], kv->nb[1]}, size_t(d.kv_lora) * sizeof(float));
        k_pe = g.rope(g.cont(k_pe), in.positions, nullptr, rope);  // [rope, 1, T]
        Tensor* latent = g.concat(g.reshape(c, {d.kv_lora, 1, T}), k_pe, 0);  // [kv_lora + rope, 1, T]
        Tensor* cache_k = cache.k(il);
        g.build_forward(g.cpy(g.permute(latent, 0, 2, 1, 3),
                              g.view(cache_k, {cache_k->ne[0], T, 1}, {cache_k->nb[1], cache_k->nb[2]},
                                     size_t(in.kv_pos) * cache_k->nb[1])));

        Tensor* attn = W(TensorRole::AttnKB, il) && W(TensorRole::AttnVB, il)
                           ? attention_absorbed(g, m, cache_k, il, in, d, q_nope, q_pe, scale)
                           : attention_expanded(g, m, cache_k, il, in, d, q_nope, q_pe, scale);
        x = g.add(x, g.mul_mat(W(TensorRole::AttnOutput, il), attn));

        h = norm_rms(g, x, W(TensorRole::FfnNorm, il), hp.rms_eps);
        Tensor* ffn = hp.layer_is_moe(il) ? moe(g, m, il, h, in)
                                          : ffn_swiglu(g, h, W(TensorRole::FfnGate, il), W(TensorRole::FfnUp, il),
                                                       W(TensorRole::FfnDown, il));
        x = g.add(x, ffn);
    }
    x = last_token_only(g, x, in);
    x = norm_rms(g, x, m.weight(TensorRole::OutputNorm), hp.rms_eps);
    Tensor* output = m.weight(TensorRole::Output);
    return g.mul_mat(output ? output : m.weight(TensorRole::TokenEmbd), x);
}

}  // namespace moelite
