// Scalar reference of the K-quants (super-blocks of 256): unpacking of each
// layout, to_float, vec_dot with Q8_K activations, and Q8_K itself.
//
// Each weight layout has one unpack function giving the integer quant of every
// element; to_float and vec_dot both go through it, so a layout is written
// down once. to_float applies ggml's per-sub-block formulas in ggml's order:
//   Q2_K, Q4_K, Q5_K:  (d * sc) * q - (dmin * m)
//   Q3_K:              (d * sc) * q          (sc signed, 6 bits, q in -4..3)
//   Q6_K:              (d * sc) * q          (sc int8, q in -32..31)
// vec_dot sums q * y over each sub-block in integers, weights the sums with
// the sub-block scales (and mins, against the sum of y), then multiplies by the
// f32 scales of the two blocks.
#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "quant/ref.h"

namespace moelite::ref {
namespace {

constexpr int kQK = kQK_K;

// Q2_K: element e has 2 bits at qs[32 * (e / 128) + e % 32], bit 2 * ((e % 128) / 32).
void unpack_q2_k(const BlockQ2_K& b, int* q) {
    for (int e = 0; e < kQK; ++e) q[e] = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

// Q3_K: low 2 bits as Q2_K; the high bit at hmask[e % 32], bit e / 32; a clear
// high bit means q - 4.
void unpack_q3_k(const BlockQ3_K& b, int* q) {
    for (int e = 0; e < kQK; ++e) {
        const int low = (b.qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        const bool high = (b.hmask[e % 32] >> (e / 32)) & 1;
        q[e] = high ? low : low - 4;
    }
}

// Q4_K: element e in qs[32 * (e / 64) + e % 32], low nibble for even e / 32.
void unpack_q4_k(const BlockQ4_K& b, int* q) {
    for (int e = 0; e < kQK; ++e) q[e] = (b.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0f;
}

// Q5_K: the low 4 bits as Q4_K, the fifth at qh[e % 32], bit e / 32.
void unpack_q5_k(const BlockQ5_K& b, int* q) {
    for (int e = 0; e < kQK; ++e) {
        const int low = (b.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0f;
        q[e] = low | (((b.qh[e % 32] >> (e / 32)) & 1) << 4);
    }
}

// Q6_K: per half h = e / 128, with r = e % 128, k = r / 32, l = r % 32: the
// low 4 bits in ql[64 h + 32 (k % 2) + l] (low nibble for k < 2), the top 2
// in qh[32 h + l] at bit 2 k; stored with a +32 bias.
void unpack_q6_k(const BlockQ6_K& b, int* q) {
    for (int e = 0; e < kQK; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int low = (b.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
        const int top = (b.qh[32 * h + l] >> (2 * k)) & 3;
        q[e] = (low | (top << 4)) - 32;
    }
}

// sum over [begin, begin + len) of q[e] * y[e]
int dot_range(const int* q, const int8_t* y, int begin, int len) {
    int sum = 0;
    for (int e = begin; e < begin + len; ++e) sum += q[e] * y[e];
    return sum;
}

int sum_range(const int8_t* y, int begin, int len) {
    int sum = 0;
    for (int e = begin; e < begin + len; ++e) sum += y[e];
    return sum;
}

}  // namespace

void k4_pack_scales_mins(const int* scales, const int* mins, uint8_t* packed) {
    for (int j = 0; j < 4; ++j) {
        MOELITE_ASSERT(scales[j] >= 0 && scales[j] < 64 && mins[j] >= 0 && mins[j] < 64);
        packed[j] = uint8_t(scales[j]);
        packed[j + 4] = uint8_t(mins[j]);
    }
    for (int j = 4; j < 8; ++j) {
        MOELITE_ASSERT(scales[j] >= 0 && scales[j] < 64 && mins[j] >= 0 && mins[j] < 64);
        packed[j + 4] = uint8_t((scales[j] & 0x0f) | ((mins[j] & 0x0f) << 4));
        packed[j - 4] |= uint8_t((scales[j] >> 4) << 6);
        packed[j] |= uint8_t((mins[j] >> 4) << 6);
    }
}

void q3k_pack_scales(const int* scales, uint8_t* packed) {
    std::memset(packed, 0, 12);
    for (int j = 0; j < 16; ++j) {
        MOELITE_ASSERT(scales[j] >= -32 && scales[j] < 32);
        const int biased = scales[j] + 32;
        packed[j % 8] |= uint8_t((biased & 0x0f) << (j < 8 ? 0 : 4));
        packed[8 + j % 4] |= uint8_t((biased >> 4) << (2 * (j / 4)));
    }
}

// ---------------------------------------------------------------- Q2_K

void to_float_q2_k(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ2_K*>(src);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        unpack_q2_k(b[i], q);
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        for (int s = 0; s < 16; ++s) {
            const float dl = d * float(b[i].scales[s] & 0x0f);
            const float ml = dmin * float(b[i].scales[s] >> 4);
            for (int e = 16 * s; e < 16 * s + 16; ++e) dst[e] = dl * float(q[e]) - ml;
        }
    }
}

void vec_dot_q2_k_q8_k(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ2_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        unpack_q2_k(x[i], q);
        int isum = 0, msum = 0;
        for (int sb = 0; sb < 16; ++sb) {
            isum += (x[i].scales[sb] & 0x0f) * dot_range(q, y[i].qs, 16 * sb, 16);
            msum += (x[i].scales[sb] >> 4) * sum_range(y[i].qs, 16 * sb, 16);
        }
        sum += y[i].d * fp16_to_fp32(x[i].d) * float(isum) - y[i].d * fp16_to_fp32(x[i].dmin) * float(msum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q3_K

void to_float_q3_k(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ3_K*>(src);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        unpack_q3_k(b[i], q);
        const float d = fp16_to_fp32(b[i].d);
        for (int s = 0; s < 16; ++s) {
            const float dl = d * float(q3k_get_scale(b[i].scales, s));
            for (int e = 16 * s; e < 16 * s + 16; ++e) dst[e] = dl * float(q[e]);
        }
    }
}

void vec_dot_q3_k_q8_k(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ3_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        unpack_q3_k(x[i], q);
        int isum = 0;
        for (int sb = 0; sb < 16; ++sb) isum += q3k_get_scale(x[i].scales, sb) * dot_range(q, y[i].qs, 16 * sb, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(isum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q4_K

void to_float_q4_k(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ4_K*>(src);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        unpack_q4_k(b[i], q);
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        for (int s = 0; s < 8; ++s) {
            int sc, m;
            k4_get_scale_min(b[i].scales, s, &sc, &m);
            const float dl = d * float(sc), ml = dmin * float(m);
            for (int e = 32 * s; e < 32 * s + 32; ++e) dst[e] = dl * float(q[e]) - ml;
        }
    }
}

void vec_dot_q4_k_q8_k(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        unpack_q4_k(x[i], q);
        int isum = 0, msum = 0;
        for (int sb = 0; sb < 8; ++sb) {
            int sc, m;
            k4_get_scale_min(x[i].scales, sb, &sc, &m);
            isum += sc * dot_range(q, y[i].qs, 32 * sb, 32);
            msum += m * sum_range(y[i].qs, 32 * sb, 32);
        }
        sum += y[i].d * fp16_to_fp32(x[i].d) * float(isum) - y[i].d * fp16_to_fp32(x[i].dmin) * float(msum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q5_K

void to_float_q5_k(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ5_K*>(src);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        unpack_q5_k(b[i], q);
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        for (int s = 0; s < 8; ++s) {
            int sc, m;
            k4_get_scale_min(b[i].scales, s, &sc, &m);
            const float dl = d * float(sc), ml = dmin * float(m);
            for (int e = 32 * s; e < 32 * s + 32; ++e) dst[e] = dl * float(q[e]) - ml;
        }
    }
}

void vec_dot_q5_k_q8_k(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        unpack_q5_k(x[i], q);
        int isum = 0, msum = 0;
        for (int sb = 0; sb < 8; ++sb) {
            int sc, m;
            k4_get_scale_min(x[i].scales, sb, &sc, &m);
            isum += sc * dot_range(q, y[i].qs, 32 * sb, 32);
            msum += m * sum_range(y[i].qs, 32 * sb, 32);
        }
        sum += y[i].d * fp16_to_fp32(x[i].d) * float(isum) - y[i].d * fp16_to_fp32(x[i].dmin) * float(msum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q6_K

void to_float_q6_k(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ6_K*>(src);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        unpack_q6_k(b[i], q);
        const float d = fp16_to_fp32(b[i].d);
        for (int s = 0; s < 16; ++s) {
            const float dl = d * float(b[i].scales[s]);
            for (int e = 16 * s; e < 16 * s + 16; ++e) dst[e] = dl * float(q[e]);
        }
    }
}

void vec_dot_q6_k_q8_k(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ6_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = block_count(n, kQK_K);
    int q[kQK];
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        unpack_q6_k(x[i], q);
        int isum = 0;
        for (int sb = 0; sb < 16; ++sb) isum += x[i].scales[sb] * dot_range(q, y[i].qs, 16 * sb, 16);
        sum += fp16_to_fp32(x[i].d) * y[i].d * float(isum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q8_K

void to_float_q8_k(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ8_K*>(src);
    const int64_t nb = block_count(n, kQK_K);
    for (int64_t i = 0; i < nb; ++i, dst += kQK)
        for (int e = 0; e < kQK; ++e) dst[e] = b[i].d * float(b[i].qs[e]);
}

// ggml's Q8_K: the signed extreme maps to -127 (d = -extreme / 127, kept in
// f32), round half to even, and bsums[g] = the sum of quants 16 g .. 16 g + 15.
void from_float_q8_k(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_K*>(dst);
    const int64_t nb = block_count(n, kQK_K);
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        std::memset(&b[i], 0, sizeof(BlockQ8_K));
        if (any_non_finite(src, kQK)) {
            b[i].d = fp_from_bits(0x7fc00000u);  // poisoned: reads back as NaN
            continue;
        }
        float amax = 0.0f, max = 0.0f;
        for (int e = 0; e < kQK; ++e) {
            if (std::fabs(src[e]) > amax) {
                amax = std::fabs(src[e]);
                max = src[e];
            }
        }
        const float iscale = amax == 0.0f ? 0.0f : -127.0f / max;
        if (!std::isfinite(iscale) || iscale == 0.0f) continue;  // zero, or too small to scale: all zero
        for (int e = 0; e < kQK; ++e) b[i].qs[e] = int8_t(std::clamp(round_even(iscale * src[e]), -127, 127));
        for (int g = 0; g < kQK / 16; ++g) b[i].bsums[g] = int16_t(sum_range(b[i].qs, 16 * g, 16));
        b[i].d = 1.0f / iscale;
    }
}

void vec_dot_q8_k_q8_k(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = block_count(n, kQK_K);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int isum = 0;
        for (int e = 0; e < kQK; ++e) isum += x[i].qs[e] * y[i].qs[e];
        sum += x[i].d * y[i].d * float(isum);
    }
    *s = sum;
}

}  // namespace moelite::ref
