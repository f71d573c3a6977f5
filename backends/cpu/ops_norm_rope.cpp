// rms_norm and rope (normal, neox, frequency factors, YaRN). Semantics in
// core/graph.h.
//
// RoPE angles are computed in double per token position (n_dims/2 cos/sin
// pairs, shared by every head of that token): theta = pos * base^(-2i/n_dims)
// reaches 1e5 radians at long context, where float would lose ~1e-2 rad.
//
// YaRN ("YaRN: Efficient Context Window Extension of Large Language Models",
// Peng et al. 2023), as GGUF models expect it:
//  - theta_extrap = pos * base^(-2i/n_dims) / freq_factor[i] (the unscaled angle),
//    theta_interp = freq_scale * theta_extrap (position interpolation);
//  - the pair index i is mixed between them by a ramp over the "correction
//    dims" [low, high]: pairs below low (fast rotating, many turns within the
//    original context) keep extrapolation, pairs above high interpolate:
//      ramp(i) = 1 - clamp((i - low) / max(0.001, high - low), 0, 1),
//      theta   = theta_interp * (1 - ramp * ext_factor) + theta_extrap * ramp * ext_factor;
//  - low / high are the pair indices whose wavelength makes beta_fast /
//    beta_slow turns over n_ctx_orig positions:
//      dim(beta) = n_dims * ln(n_ctx_orig / (2 pi beta)) / (2 ln base),
//      low = max(0, floor(dim(beta_fast))), high = min(n_dims - 1, ceil(dim(beta_slow)));
//  - cos and sin are multiplied by mscale = attn_factor, times
//    (1 + 0.1 ln(1 / freq_scale)) when ext_factor != 0 (the paper's attention
//    temperature sqrt(1/t), folded into q and k).
// With ext_factor == 0 this is plain RoPE with linear scaling by freq_scale.
#include <cmath>
#include <cstring>
#include <numbers>

#include "backends/cpu/ops.h"
#include "core/error.h"
#include "core/graph.h"

namespace moelite::cpu {
namespace {

inline void unravel_row(const Tensor& t, int64_t r, int64_t* i1, int64_t* i2, int64_t* i3) {
    *i1 = r % t.ne[1];
    r /= t.ne[1];
    *i2 = r % t.ne[2];
    *i3 = r / t.ne[2];
}

inline float load_f32(const char* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}

struct YarnDims {
    float low = 0, high = 0;
};

YarnDims yarn_corr_dims(int n_dims, int n_ctx_orig, float base, float beta_fast, float beta_slow) {
    auto dim = [&](float beta) {
        return float(n_dims) * std::log(float(n_ctx_orig) / (beta * 2.0f * std::numbers::pi_v<float>)) /
               (2.0f * std::log(base));
    };
    YarnDims d;
    d.low = std::max(0.0f, std::floor(dim(beta_fast)));
    d.high = std::min(float(n_dims - 1), std::ceil(dim(beta_slow)));
    return d;
}

// cos/sin pairs for one position: cache[2i] = cos, cache[2i+1] = sin, i < n_dims/2.
void rope_angles(const RopeParams& p, const YarnDims& yd, const float* freq_factors, int32_t pos, float* cache) {
    const int half = p.n_dims / 2;
    double mscale = p.attn_factor;
    if (p.ext_factor != 0.0f) mscale *= 1.0 + 0.1 * std::log(1.0 / double(p.freq_scale));
    for (int i = 0; i < half; ++i) {
        double theta_extrap = double(pos) * std::pow(double(p.freq_base), -2.0 * i / p.n_dims);
        if (freq_factors) theta_extrap /= double(freq_factors[i]);
        const double theta_interp = double(p.freq_scale) * theta_extrap;
        double theta = theta_interp;
        if (p.ext_factor != 0.0f) {
            const float y = (float(i) - yd.low) / std::max(0.001f, yd.high - yd.low);
            const double ramp_mix = double(1.0f - std::min(1.0f, std::max(0.0f, y))) * p.ext_factor;
            theta = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
        }
        cache[2 * i] = float(std::cos(theta) * mscale);
        cache[2 * i + 1] = float(std::sin(theta) * mscale);
    }
}

}  // namespace

void op_rms_norm(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    const float eps = rms_norm_eps(node);
    const int64_t n = node.ne[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        int64_t i1, i2, i3;
        unravel_row(node, r, &i1, &i2, &i3);
        const char* src = static_cast<const char*>(a.data) + i1 * a.nb[1] + i2 * a.nb[2] + i3 * a.nb[3];
        float* dst = reinterpret_cast<float*>(static_cast<char*>(node.data) + i1 * node.nb[1] + i2 * node.nb[2] +
                                              i3 * node.nb[3]);
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            const float v = load_f32(src + i * a.nb[0]);
            sum += double(v) * v;
        }
        const float scale = float(1.0 / std::sqrt(sum / double(n) + double(eps)));
        for (int64_t i = 0; i < n; ++i) dst[i] = load_f32(src + i * a.nb[0]) * scale;
    }
}

WorkSize work_size_rope(const Tensor& node) {
    const RopeParams p = rope_params(node);
    return {0, align_up(sizeof(float) * size_t(p.n_dims))};
}

void op_rope(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    const Tensor& pos = *node.src[1];
    const Tensor* ff = node.src[2];
    const RopeParams p = rope_params(node);
    const YarnDims yd = yarn_corr_dims(p.n_dims, p.n_ctx_orig, p.freq_base, p.beta_fast, p.beta_slow);
    const float* freq_factors = ff ? static_cast<const float*>(ff->data) : nullptr;
    float* cache = reinterpret_cast<float*>(ctx.thread_scratch());
    const int64_t head_dim = node.ne[0];
    const int half = p.n_dims / 2;
    const bool neox = p.mode == RopeMode::Neox;

    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    int64_t cached_token = -1;
    for (int64_t r = r0; r < r1; ++r) {
        int64_t i1, i2, i3;
        unravel_row(node, r, &i1, &i2, &i3);
        if (i2 != cached_token) {
            int32_t position;
            std::memcpy(&position, static_cast<const char*>(pos.data) + i2 * pos.nb[0], 4);
            rope_angles(p, yd, freq_factors, position, cache);
            cached_token = i2;
        }
        const char* src = static_cast<const char*>(a.data) + i1 * a.nb[1] + i2 * a.nb[2] + i3 * a.nb[3];
        float* dst = reinterpret_cast<float*>(static_cast<char*>(node.data) + i1 * node.nb[1] + i2 * node.nb[2] +
                                              i3 * node.nb[3]);
        const size_t nb0 = a.nb[0];
        for (int i = 0; i < half; ++i) {
            const int64_t j0 = neox ? i : 2 * i;
            const int64_t j1 = neox ? i + half : 2 * i + 1;
            const float x0 = load_f32(src + j0 * nb0), x1 = load_f32(src + j1 * nb0);
            const float c = cache[2 * i], s = cache[2 * i + 1];
            dst[j0] = x0 * c - x1 * s;
            dst[j1] = x0 * s + x1 * c;
        }
        for (int64_t j = p.n_dims; j < head_dim; ++j) dst[j] = load_f32(src + j * nb0);
    }
}

}  // namespace moelite::cpu
