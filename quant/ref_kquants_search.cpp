// Quantizers of the K-quant weight formats (Q2_K .. Q6_K): a search for the
// sub-block scales (and mins) that minimise the squared error, then the
// quantization of those scales against the super-block's f16 scale(s).
//
// Our own method, in four steps per 256-element super-block:
//  1. each sub-block is fitted alone, in f32: a grid of 21 trial steps around
//     range / levels; each trial rounds the elements and is scored by the
//     closed-form error of the least-squares scale (and offset) for those
//     integers; from the best, "round with the fit, refit" is repeated while
//     the error drops;
//  2. the super-block scale is the largest sub-block scale over the largest
//     integer scale (63, 15, 127 ...), rounded to f16 as stored;
//  3. each sub-block's integer scale (and min) is chosen among the nearest
//     value and its neighbours by the error of the elements re-rounded with the
//     dequantized scale, exactly as to_float will compute it;
//  4. with all integers fixed, the f16 super-block scale(s) are refitted by
//     least squares and step 3 redone, kept if the error drops.
// Unlike ggml's reference, the objective is the plain (unweighted) squared
// error; tests/test_quant.cpp measures it against ggml's on the same rows.
// An all-zero super-block stores all-zero bytes; a non-finite one is poisoned
// (quant/quant.h).
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
// Trial steps: range / (levels + kTrialStep * t) for t in [-kTrials, kTrials].
constexpr int kTrials = 10;
constexpr float kTrialStep = 0.1f;

// ---- affine sub-blocks: x ~ scale * q - offset, q in 0..nmax, scale, offset >= 0

// The level of x for a given inverse scale and offset, clamped to 0..nmax.
// NaN (from an infinite or NaN scale) goes to 0.
inline int affine_q(float x, float inv_scale, float offset, int nmax) {
    float v = (x + offset) * inv_scale;
    v = 0.0f < v ? v : 0.0f;  // branch-free clamps (minss/maxss); NaN goes to 0
    v = v < float(nmax) ? v : float(nmax);
    return round_even(v);
}

inline float inverse_or_zero(float scale) {
    if (!(scale > 0.0f) && !(scale < 0.0f)) return 0.0f;  // zero or NaN
    const float inv = 1.0f / scale;
    return std::isfinite(inv) ? inv : 0.0f;
}

// Squared error with every element rounded to its nearest level.
float affine_error(const float* x, int n, int nmax, float scale, float offset) {
    const float inv = inverse_or_zero(scale);
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float e = scale * float(affine_q(x[i], inv, offset, nmax)) - offset - x[i];
        err += e * e;
    }
    return err;
}

struct Affine {
    float scale = 0.0f;
    float offset = 0.0f;
};

// For fixed levels q, the least-squares scale and offset have a closed form,
// and so has their squared error: with S_q = sum q, S_qq = sum q^2, S_x, S_qx,
// S_xx likewise, error = S_xx - (S_qq S_x^2 - 2 S_q S_x S_qx + n S_qx^2) / det,
// det = n S_qq - S_q^2. When that fit wants a negative offset (all positive
// values), the offset is pinned to 0: scale = S_qx / S_qq, error = S_xx -
// S_qx^2 / S_qq. One pass over x scores a trial, without re-rounding.
struct AffineSolution {
    Affine fit;
    double error = 0.0;
    bool valid = false;
};

AffineSolution affine_round_and_solve(const float* x, int n, int nmax, float inv_scale, float offset, double sum_x,
                                      double sum_xx) {
    int sq = 0, sqq = 0;
    double sqx = 0.0;
    for (int i = 0; i < n; ++i) {
        const int q = affine_q(x[i], inv_scale, offset, nmax);
        sq += q;
        sqq += q * q;
        sqx += double(q) * x[i];
    }
    AffineSolution out;
    const double det = double(n) * sqq - double(sq) * sq;
    if (!(det > 0.0)) return out;
    double scale = (double(n) * sqx - double(sq) * sum_x) / det;
    double off = (scale * sq - sum_x) / n;
    double error = sum_xx - (double(sqq) * sum_x * sum_x - 2.0 * sq * sum_x * sqx + double(n) * sqx * sqx) / det;
    if (off < 0.0) {
        off = 0.0;
        scale = sqx / sqq;
        error = sum_xx - sqx * sqx / sqq;
    }
    if (!(scale > 0.0) || !std::isfinite(scale)) return out;
    out.fit = {float(scale), float(off)};
    out.error = error;
    out.valid = true;
    return out;
}

Affine affine_fit(const float* x, int n, int nmax) {
    float lo = 0.0f, hi = x[0];
    double sum_x = 0.0, sum_xx = 0.0;
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
        sum_x += x[i];
        sum_xx += double(x[i]) * x[i];
    }
    Affine best{0.0f, -lo};  // also exact for a constant negative sub-block
    if (hi - lo < kTiny) return best;
    best.scale = (hi - lo) / float(nmax);
    // Score each trial step by the error of its least-squares refit.
    double best_score = -1.0;
    for (int t = -kTrials; t <= kTrials; ++t) {
        const float inv = (float(nmax) + kTrialStep * float(t)) / (hi - lo);
        const AffineSolution s = affine_round_and_solve(x, n, nmax, inv, -lo, sum_x, sum_xx);
        if (s.valid && (best_score < 0.0 || s.error < best_score)) {
            best_score = s.error;
            best = s.fit;
        }
    }
    // Then alternate "round with the fit, refit"; each round can only lower the
    // error. Stop when it no longer does.
    for (int iter = 0; iter < 6; ++iter) {
        const AffineSolution s =
            affine_round_and_solve(x, n, nmax, inverse_or_zero(best.scale), best.offset, sum_x, sum_xx);
        if (!s.valid || !(s.error < best_score)) break;
        best_score = s.error;
        best = s.fit;
    }
    return best;
}

// ---- symmetric sub-blocks: x ~ scale * q, q in -nmax..nmax-1, scale of either sign

inline int symmetric_q(float x, float inv_scale, int nmax) {
    float v = x * inv_scale;  // finite: x is, and inv_scale comes from inverse_or_zero
    v = float(-nmax) < v ? v : float(-nmax);
    v = v < float(nmax - 1) ? v : float(nmax - 1);
    return round_even(v);
}

float symmetric_error(const float* x, int n, int nmax, float scale) {
    const float inv = inverse_or_zero(scale);
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float e = scale * float(symmetric_q(x[i], inv, nmax)) - x[i];
        err += e * e;
    }
    return err;
}

// As for the affine case, for fixed levels the least-squares scale is
// S_qx / S_qq and its error S_xx - S_qx^2 / S_qq: trials are compared by
// S_qx^2 / S_qq (larger is better) in one pass each.
float symmetric_fit(const float* x, int n, int nmax) {
    float amax = 0.0f, extreme = 0.0f;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            extreme = x[i];
        }
    }
    if (amax < kTiny) return 0.0f;
    float best = extreme / -float(nmax);  // the extreme maps to -nmax, the end with one more level
    double best_explained = -1.0;
    auto round_and_solve = [&](float inv_scale) {
        double sqx = 0.0;
        int sqq = 0;
        for (int i = 0; i < n; ++i) {
            const int q = symmetric_q(x[i], inv_scale, nmax);
            sqx += double(q) * x[i];
            sqq += q * q;
        }
        if (sqq == 0) return false;
        const double explained = sqx * sqx / sqq;
        if (!(explained > best_explained)) return false;
        best_explained = explained;
        best = float(sqx / sqq);
        return true;
    };
    for (int t = -kTrials; t <= kTrials; ++t) round_and_solve(-(float(nmax) + kTrialStep * float(t)) / extreme);
    for (int iter = 0; iter < 6; ++iter)
        if (!round_and_solve(inverse_or_zero(best))) break;
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

// Affine super-block (Q2_K, Q4_K, Q5_K): fits each of the sub-blocks of
// `sub` elements, then chooses f16 d and dmin and, per sub-block, integer
// scales ls and mins lm in 0..max_level and levels q in 0..nmax.
struct AffineSuper {
    int q[kQK];
    int ls[16], lm[16];
    uint16_t d_bits = 0, dmin_bits = 0;
    float error = 0.0f;
};

// Given d and dmin (f16 bits), the best ls / lm of each sub-block among the
// nearest to its fit and their neighbours, scored as to_float computes.
void affine_assign(const float* x, int sub, int nmax, int max_level, const Affine* fits, AffineSuper* out) {
    const float d = fp16_to_fp32(out->d_bits), dmin = fp16_to_fp32(out->dmin_bits);
    out->error = 0.0f;
    for (int s = 0; s < kQK / sub; ++s) {
        const float* xs = x + s * sub;
        const int ls0 = nearest_level(fits[s].scale, d, 0, max_level);
        const int lm0 = nearest_level(fits[s].offset, dmin, 0, max_level);
        float best_err = -1.0f;
        for (int a = std::max(0, ls0 - 1); a <= std::min(max_level, ls0 + 1); ++a) {
            for (int m = std::max(0, lm0 - 1); m <= std::min(max_level, lm0 + 1); ++m) {
                const float err = affine_error(xs, sub, nmax, d * float(a), dmin * float(m));
                if (best_err < 0 || err < best_err) {
                    best_err = err;
                    out->ls[s] = a;
                    out->lm[s] = m;
                }
            }
        }
        out->error += best_err;
        const float inv = inverse_or_zero(d * float(out->ls[s]));
        for (int i = 0; i < sub; ++i) out->q[s * sub + i] = affine_q(xs[i], inv, dmin * float(out->lm[s]), nmax);
    }
}

void quantize_affine_super(const float* x, int sub, int nmax, int max_level, AffineSuper* out) {
    const int n_sub = kQK / sub;
    Affine fits[16];
    float max_scale = 0.0f, max_offset = 0.0f;
    for (int s = 0; s < n_sub; ++s) {
        fits[s] = affine_fit(x + s * sub, sub, nmax);
        max_scale = std::max(max_scale, fits[s].scale);
        max_offset = std::max(max_offset, fits[s].offset);
    }
    out->d_bits = fp32_to_fp16(max_scale / float(max_level));
    out->dmin_bits = fp32_to_fp16(max_offset / float(max_level));
    affine_assign(x, sub, nmax, max_level, fits, out);
    // With the integers fixed, x ~ d * (ls q) - dmin * lm is linear in (d, dmin):
    // refit both by least squares, reassign, keep it if the error drops.
    for (int iter = 0; iter < 2; ++iter) {
        double saa = 0, sab = 0, sbb = 0, sax = 0, sbx = 0;
        for (int i = 0; i < kQK; ++i) {
            const double a = double(out->ls[i / sub]) * out->q[i], b = -double(out->lm[i / sub]);
            saa += a * a;
            sab += a * b;
            sbb += b * b;
            sax += a * x[i];
            sbx += b * x[i];
        }
        const double det = saa * sbb - sab * sab;
        if (!(det > 0.0)) break;
        const double d = (sax * sbb - sbx * sab) / det, dmin = (saa * sbx - sab * sax) / det;
        if (!(d > 0.0) || !(dmin >= 0.0)) break;
        AffineSuper trial;
        trial.d_bits = fp32_to_fp16(float(d));
        trial.dmin_bits = fp32_to_fp16(float(dmin));
        if (trial.d_bits == out->d_bits && trial.dmin_bits == out->dmin_bits) break;
        affine_assign(x, sub, nmax, max_level, fits, &trial);
        if (!(trial.error < out->error)) break;
        *out = trial;
    }
}

// Symmetric super-block (Q3_K, Q6_K): 16 sub-blocks of 16, integer scales in
// -(max_level + 1)..max_level against one f16 d, levels q in -nmax..nmax-1.
struct SymmetricSuper {
    int q[kQK];
    int sc[16];
    uint16_t d_bits = 0;
    float error = 0.0f;
};

void symmetric_assign(const float* x, int nmax, int max_level, const float* scales, SymmetricSuper* out) {
    const float d = fp16_to_fp32(out->d_bits);
    out->error = 0.0f;
    for (int s = 0; s < 16; ++s) {
        const float* xs = x + 16 * s;
        const int l0 = nearest_level(scales[s], d, -(max_level + 1), max_level);
        float best_err = -1.0f;
        for (int a = std::max(-(max_level + 1), l0 - 1); a <= std::min(max_level, l0 + 1); ++a) {
            const float err = symmetric_error(xs, 16, nmax, d * float(a));
            if (best_err < 0 || err < best_err) {
                best_err = err;
                out->sc[s] = a;
            }
        }
        out->error += best_err;
        const float inv = inverse_or_zero(d * float(out->sc[s]));
        for (int i = 0; i < 16; ++i) out->q[16 * s + i] = symmetric_q(xs[i], inv, nmax);
    }
}

// False for a super-block with nothing to represent (all sub-blocks below kTiny).
bool quantize_symmetric_super(const float* x, int nmax, int max_level, SymmetricSuper* out) {
    float scales[16];
    float amax = 0.0f, extreme = 0.0f;
    for (int s = 0; s < 16; ++s) {
        scales[s] = symmetric_fit(x + 16 * s, 16, nmax);
        if (std::fabs(scales[s]) > amax) {
            amax = std::fabs(scales[s]);
            extreme = scales[s];
        }
    }
    if (amax == 0.0f) return false;
    out->d_bits = fp32_to_fp16(extreme / -float(max_level + 1));  // the extreme scale maps to the wider end
    symmetric_assign(x, nmax, max_level, scales, out);
    // With the integers fixed, x ~ d * (sc q): refit d by least squares.
    for (int iter = 0; iter < 2; ++iter) {
        double saa = 0, sax = 0;
        for (int i = 0; i < kQK; ++i) {
            const double a = double(out->sc[i / 16]) * out->q[i];
            saa += a * a;
            sax += a * x[i];
        }
        if (!(saa > 0.0)) break;
        SymmetricSuper trial;
        trial.d_bits = fp32_to_fp16(float(sax / saa));
        if (trial.d_bits == out->d_bits) break;
        symmetric_assign(x, nmax, max_level, scales, &trial);
        if (!(trial.error < out->error)) break;
        *out = trial;
    }
    return true;
}

}  // namespace

void from_float_q2_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ2_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    AffineSuper r;
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = b[i].dmin = kF16PoisonNaN;
            continue;
        }
        quantize_affine_super(src, 16, 3, 15, &r);
        const int* q = r.q;
        b[i].d = r.d_bits;
        b[i].dmin = r.dmin_bits;
        for (int s = 0; s < 16; ++s) b[i].scales[s] = uint8_t(r.ls[s] | (r.lm[s] << 4));
        std::memset(b[i].qs, 0, sizeof(b[i].qs));
        for (int e = 0; e < kQK; ++e) b[i].qs[32 * (e / 128) + e % 32] |= uint8_t(q[e] << (2 * ((e % 128) / 32)));
    }
}

void from_float_q3_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ3_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    SymmetricSuper r;
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = kF16PoisonNaN;
            continue;
        }
        if (!quantize_symmetric_super(src, 4, 31, &r)) {
            std::memset(&b[i], 0, sizeof(BlockQ3_K));  // nothing to represent: all bytes zero
            continue;
        }
        const int* q = r.q;
        b[i].d = r.d_bits;
        q3k_pack_scales(r.sc, b[i].scales);
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
    AffineSuper r;
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = b[i].dmin = kF16PoisonNaN;
            continue;
        }
        quantize_affine_super(src, 32, 15, 63, &r);
        const int* q = r.q;
        b[i].d = r.d_bits;
        b[i].dmin = r.dmin_bits;
        k4_pack_scales_mins(r.ls, r.lm, b[i].scales);
        std::memset(b[i].qs, 0, sizeof(b[i].qs));
        for (int e = 0; e < kQK; ++e) b[i].qs[32 * (e / 64) + e % 32] |= uint8_t(q[e] << (4 * ((e / 32) % 2)));
    }
}

void from_float_q5_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ5_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    AffineSuper r;
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = b[i].dmin = kF16PoisonNaN;
            continue;
        }
        quantize_affine_super(src, 32, 31, 63, &r);
        const int* q = r.q;
        b[i].d = r.d_bits;
        b[i].dmin = r.dmin_bits;
        k4_pack_scales_mins(r.ls, r.lm, b[i].scales);
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
    SymmetricSuper r;
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (poison_if_non_finite(src, &b[i])) {
            b[i].d = kF16PoisonNaN;
            continue;
        }
        if (!quantize_symmetric_super(src, 32, 127, &r)) {
            std::memset(&b[i], 0, sizeof(BlockQ6_K));  // nothing to represent: all bytes zero
            continue;
        }
        const int* q = r.q;
        b[i].d = r.d_bits;
        for (int s = 0; s < 16; ++s) b[i].scales[s] = int8_t(r.sc[s]);
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
