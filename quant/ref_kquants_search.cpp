// Quantizers of the K-quant weight formats (Q2_K .. Q6_K): a search for the
// sub-block scales (and mins) that minimise the squared error, then the
// quantization of those scales against the super-block's f16 scale(s).
//
// Our own method, in three steps per 256-element super-block:
//  1. each sub-block is fitted alone, in f32: a grid of trial steps around
//     range / levels; for each, round every element, solve the least-squares
//     scale (and offset) for those integers, re-round with the solution and keep
//     the best; then iterate "round, refit" from the best until it stops
//     improving;
//  2. the super-block scale is the largest sub-block scale over the largest
//     integer scale (63, 15, 127 ...), rounded to f16 as stored;
//  3. each sub-block's integer scale (and min) is chosen among the nearest
//     value and its neighbours by the error of the elements re-rounded with the
//     dequantized scale, exactly as to_float will compute it.
// Unlike ggml's reference, the objective is the plain (unweighted) squared
// error; the tests measure it against ggml's on the same rows.
#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "quant/ref.h"

namespace moelite::ref {
namespace {

constexpr int kQK = kQK_K;
// Sub-blocks whose largest magnitude is below this are treated as zero: far
// below anything an f16 scale can express, and safe to divide by.
constexpr float kTiny = 1e-15f;
// Trial steps: range / (levels + t) for t in [-kTrialSpan, kTrialSpan].
constexpr int kTrials = 10;
constexpr float kTrialStep = 0.1f;

// ---- affine sub-blocks: x ~ scale * q - offset, q in 0..nmax, scale, offset >= 0

int affine_q(float x, float scale, float offset, int nmax) {
    if (!(scale > 0.0f) || !std::isfinite(scale)) return 0;
    const float v = (x + offset) / scale;
    if (!(v > 0.0f)) return 0;  // also NaN
    if (v >= float(nmax)) return nmax;
    return round_even(v);
}

// Squared error with every element rounded to its best level.
double affine_error(const float* x, int n, int nmax, float scale, float offset) {
    double err = 0.0;
    for (int i = 0; i < n; ++i) {
        const double e = double(scale * float(affine_q(x[i], scale, offset, nmax)) - offset) - double(x[i]);
        err += e * e;
    }
    return err;
}

struct Affine {
    float scale = 0.0f;
    float offset = 0.0f;
};

// Least-squares (scale, offset) for fixed levels q, with offset >= 0 (a
// sub-block that is all positive keeps a zero minimum). False if degenerate.
bool affine_solve(const float* x, const int* q, int n, Affine* out) {
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
        sq += q[i];
        sqq += double(q[i]) * q[i];
        sx += x[i];
        sqx += double(q[i]) * x[i];
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) return false;
    double scale = (n * sqx - sq * sx) / det;
    double offset = (scale * sq - sx) / n;
    if (offset < 0) {
        offset = 0;
        scale = sqx / sqq;
    }
    if (!(scale > 0)) return false;
    out->scale = float(scale);
    out->offset = float(offset);
    return true;
}

Affine affine_fit(const float* x, int n, int nmax) {
    float lo = 0.0f, hi = x[0];
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    Affine best{0.0f, -lo};  // also exact for a constant negative sub-block
    if (hi - lo < kTiny) return best;
    double best_err = affine_error(x, n, nmax, best.scale, best.offset);
    auto consider = [&](const Affine& a) {
        const double err = affine_error(x, n, nmax, a.scale, a.offset);
        if (err < best_err) {
            best_err = err;
            best = a;
        }
    };
    int q[kQK];
    for (int t = -kTrials; t <= kTrials; ++t) {
        const Affine trial{(hi - lo) / (float(nmax) + kTrialStep * float(t)), -lo};
        consider(trial);
        for (int i = 0; i < n; ++i) q[i] = affine_q(x[i], trial.scale, trial.offset, nmax);
        Affine solved;
        if (affine_solve(x, q, n, &solved)) consider(solved);
    }
    for (int iter = 0; iter < 8; ++iter) {
        const double before = best_err;
        for (int i = 0; i < n; ++i) q[i] = affine_q(x[i], best.scale, best.offset, nmax);
        Affine solved;
        if (affine_solve(x, q, n, &solved)) consider(solved);
        if (!(best_err < before)) break;
    }
    return best;
}

// ---- symmetric sub-blocks: x ~ scale * q, q in -nmax..nmax-1, scale of either sign

int symmetric_q(float x, float scale, int nmax) {
    if (scale == 0.0f || !std::isfinite(scale)) return 0;
    const float v = x / scale;
    if (!(v > float(-nmax))) return v != v ? 0 : -nmax;
    if (v >= float(nmax - 1)) return nmax - 1;
    return round_even(v);
}

double symmetric_error(const float* x, int n, int nmax, float scale) {
    double err = 0.0;
    for (int i = 0; i < n; ++i) {
        const double e = double(scale * float(symmetric_q(x[i], scale, nmax))) - double(x[i]);
        err += e * e;
    }
    return err;
}

float symmetric_fit(const float* x, int n, int nmax) {
    float amax = 0.0f, extreme = 0.0f;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            extreme = x[i];
        }
    }
    if (amax < kTiny) return 0.0f;
    // The extreme maps to -nmax, the end with one more level.
    float best = extreme / -float(nmax);
    double best_err = symmetric_error(x, n, nmax, best);
    auto consider = [&](float scale) {
        const double err = symmetric_error(x, n, nmax, scale);
        if (err < best_err) {
            best_err = err;
            best = scale;
        }
    };
    auto solve = [&](float scale) {  // least-squares scale for the levels `scale` rounds to
        double sqx = 0, sqq = 0;
        for (int i = 0; i < n; ++i) {
            const int q = symmetric_q(x[i], scale, nmax);
            sqx += double(q) * x[i];
            sqq += double(q) * q;
        }
        if (sqq > 0) consider(float(sqx / sqq));
    };
    for (int t = -kTrials; t <= kTrials; ++t) {
        const float trial = extreme / -(float(nmax) + kTrialStep * float(t));
        consider(trial);
        solve(trial);
    }
    for (int iter = 0; iter < 8; ++iter) {
        const double before = best_err;
        solve(best);
        if (!(best_err < before)) break;
    }
    return best;
}

// ---- super-blocks

template <class Block>
bool poison_if_non_finite(const float* x, Block* b) {
    if (!any_non_finite(x, kQK)) return false;
    std::memset(b, 0, sizeof(Block));
    return true;
}

// Integer scale in [lo, hi] nearest to v / unit (0 when unit is 0).
int nearest_level(float v, float unit, int lo, int hi) {
    if (!(unit != 0.0f) || !std::isfinite(unit)) return 0;
    const float r = v / unit;
    if (!(r > float(lo))) return lo;
    if (r >= float(hi)) return hi;
    return round_even(r);
}

// Affine super-block (Q2_K, Q4_K, Q5_K): fits each of n_sub sub-blocks, then
// picks integer scales and mins in 0..max_level against f16 d and dmin.
// Fills levels q (0..nmax), integer scales ls and mins lm, and d/dmin bits.
void quantize_affine_super(const float* x, int sub, int nmax, int max_level, int* q, int* ls, int* lm,
                           uint16_t* d_bits, uint16_t* dmin_bits) {
    const int n_sub = kQK / sub;
    Affine fits[16];
    float max_scale = 0.0f, max_offset = 0.0f;
    for (int s = 0; s < n_sub; ++s) {
        fits[s] = affine_fit(x + s * sub, sub, nmax);
        max_scale = std::max(max_scale, fits[s].scale);
        max_offset = std::max(max_offset, fits[s].offset);
    }
    *d_bits = fp32_to_fp16(max_scale / float(max_level));
    *dmin_bits = fp32_to_fp16(max_offset / float(max_level));
    const float d = fp16_to_fp32(*d_bits), dmin = fp16_to_fp32(*dmin_bits);
    for (int s = 0; s < n_sub; ++s) {
        const float* xs = x + s * sub;
        const int ls0 = nearest_level(fits[s].scale, d, 0, max_level);
        const int lm0 = nearest_level(fits[s].offset, dmin, 0, max_level);
        double best_err = -1.0;
        for (int a = std::max(0, ls0 - 1); a <= std::min(max_level, ls0 + 1); ++a) {
            for (int m = std::max(0, lm0 - 1); m <= std::min(max_level, lm0 + 1); ++m) {
                const double err = affine_error(xs, sub, nmax, d * float(a), dmin * float(m));
                if (best_err < 0 || err < best_err) {
                    best_err = err;
                    ls[s] = a;
                    lm[s] = m;
                }
            }
        }
        for (int i = 0; i < sub; ++i) q[s * sub + i] = affine_q(xs[i], d * float(ls[s]), dmin * float(lm[s]), nmax);
    }
}

// Symmetric super-block (Q3_K, Q6_K): 16 sub-blocks of 16, integer scales in
// -(max_level + 1)..max_level against one f16 d. Fills q (-nmax..nmax-1),
// the integer scales and d's bits.
void quantize_symmetric_super(const float* x, int nmax, int max_level, int* q, int* sc, uint16_t* d_bits) {
    float scales[16];
    float amax = 0.0f, extreme = 0.0f;
    for (int s = 0; s < 16; ++s) {
        scales[s] = symmetric_fit(x + 16 * s, 16, nmax);
        if (std::fabs(scales[s]) > amax) {
            amax = std::fabs(scales[s]);
            extreme = scales[s];
        }
    }
    *d_bits = fp32_to_fp16(extreme / -float(max_level + 1));  // the extreme scale maps to the wider end
    const float d = fp16_to_fp32(*d_bits);
    for (int s = 0; s < 16; ++s) {
        const float* xs = x + 16 * s;
        const int l0 = nearest_level(scales[s], d, -(max_level + 1), max_level);
        double best_err = -1.0;
        for (int a = std::max(-(max_level + 1), l0 - 1); a <= std::min(max_level, l0 + 1); ++a) {
            const double err = symmetric_error(xs, 16, nmax, d * float(a));
            if (best_err < 0 || err < best_err) {
                best_err = err;
                sc[s] = a;
            }
        }
        for (int i = 0; i < 16; ++i) q[16 * s + i] = symmetric_q(xs[i], d * float(sc[s]), nmax);
    }
}

}  // namespace

void from_float_q2_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ2_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK], ls[16], lm[16];
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = b[i].dmin = kF16PoisonNaN;
            continue;
        }
        quantize_affine_super(src, 16, 3, 15, q, ls, lm, &b[i].d, &b[i].dmin);
        for (int s = 0; s < 16; ++s) b[i].scales[s] = uint8_t(ls[s] | (lm[s] << 4));
        std::memset(b[i].qs, 0, sizeof(b[i].qs));
        for (int e = 0; e < kQK; ++e) b[i].qs[32 * (e / 128) + e % 32] |= uint8_t(q[e] << (2 * ((e % 128) / 32)));
    }
}

void from_float_q3_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ3_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK], sc[16];
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = kF16PoisonNaN;
            continue;
        }
        quantize_symmetric_super(src, 4, 31, q, sc, &b[i].d);
        q3k_pack_scales(sc, b[i].scales);
        std::memset(b[i].qs, 0, sizeof(b[i].qs));
        std::memset(b[i].hmask, 0, sizeof(b[i].hmask));
        for (int e = 0; e < kQK; ++e) {
            const int biased = q[e] + 4;  // 0..7: the high bit set means "no -4"
            b[i].qs[32 * (e / 128) + e % 32] |= uint8_t((biased & 3) << (2 * ((e % 128) / 32)));
            b[i].hmask[e % 32] |= uint8_t((biased >> 2) << (e / 32));
        }
    }
}

void from_float_q4_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ4_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK], ls[16], lm[16];
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = b[i].dmin = kF16PoisonNaN;
            continue;
        }
        quantize_affine_super(src, 32, 15, 63, q, ls, lm, &b[i].d, &b[i].dmin);
        k4_pack_scales_mins(ls, lm, b[i].scales);
        std::memset(b[i].qs, 0, sizeof(b[i].qs));
        for (int e = 0; e < kQK; ++e) b[i].qs[32 * (e / 64) + e % 32] |= uint8_t(q[e] << (4 * ((e / 32) % 2)));
    }
}

void from_float_q5_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ5_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK], ls[16], lm[16];
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = b[i].dmin = kF16PoisonNaN;
            continue;
        }
        quantize_affine_super(src, 32, 31, 63, q, ls, lm, &b[i].d, &b[i].dmin);
        k4_pack_scales_mins(ls, lm, b[i].scales);
        std::memset(b[i].qs, 0, sizeof(b[i].qs));
        std::memset(b[i].qh, 0, sizeof(b[i].qh));
        for (int e = 0; e < kQK; ++e) {
            b[i].qs[32 * (e / 64) + e % 32] |= uint8_t((q[e] & 0x0f) << (4 * ((e / 32) % 2)));
            b[i].qh[e % 32] |= uint8_t((q[e] >> 4) << (e / 32));
        }
    }
}

void from_float_q6_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ6_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK], sc[16];
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = kF16PoisonNaN;
            continue;
        }
        quantize_symmetric_super(src, 32, 127, q, sc, &b[i].d);
        for (int s = 0; s < 16; ++s) b[i].scales[s] = int8_t(sc[s]);
        std::memset(b[i].ql, 0, sizeof(b[i].ql));
        std::memset(b[i].qh, 0, sizeof(b[i].qh));
        for (int e = 0; e < kQK; ++e) {
            const int biased = q[e] + 32;  // 0..63
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            b[i].ql[64 * h + 32 * (k % 2) + l] |= uint8_t((biased & 0x0f) << (4 * (k / 2)));
            b[i].qh[32 * h + l] |= uint8_t((biased >> 4) << (2 * k));
        }
    }
}

}  // namespace moelite::ref
