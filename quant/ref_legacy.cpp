// Scalar reference of the 32-element formats: Q4_0, Q4_1, Q5_0, Q5_1 (weights)
// and Q8_0, Q8_1 (weights or activations).
//
// Quantization reproduces ggml's reference bytes for finite input: the scale
// comes from the block's extreme values (the signed value of largest magnitude
// for the symmetric formats, min and max for the "_1" formats), is computed in
// f32, and only the stored copy is rounded to f16; elements are scaled by the
// f32 inverse and rounded the way ggml does (add a half then truncate for
// Q4/Q5, round half away from zero for Q8). Where ggml's arithmetic would
// overflow (an inverse scale past FLT_MAX, for blocks below ~1e-37) we quantize
// as if the block were zero; it dequantizes to zero either way.
#include <algorithm>
#include <cfloat>
#include <cstring>

#include "core/fp16.h"
#include "quant/ref.h"

namespace moelite::ref {
namespace {

// 1/d, or 0 where d is zero or the inverse is not a finite float.
float safe_inverse(float d) {
    if (d == 0.0f) return 0.0f;
    const float id = 1.0f / d;
    return std::isfinite(id) ? id : 0.0f;
}

// The signed value of largest magnitude (the first one on ties), 0 for a zero block.
float signed_absmax(const float* x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
        }
    }
    return max;
}

float absmax(const float* x, int n) {
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
    return amax;
}

void min_max(const float* x, int n, float* lo, float* hi) {
    *lo = FLT_MAX;
    *hi = -FLT_MAX;
    for (int j = 0; j < n; ++j) {
        *lo = std::min(*lo, x[j]);
        *hi = std::max(*hi, x[j]);
    }
}

// Element j of a 32-block with 4 low bits in qs and the fifth bit in qh
// (bit j of the little-endian 32-bit word).
uint32_t load_qh(const uint8_t* qh) {
    return uint32_t(qh[0]) | (uint32_t(qh[1]) << 8) | (uint32_t(qh[2]) << 16) | (uint32_t(qh[3]) << 24);
}

void store_qh(uint8_t* qh, uint32_t bits) {
    for (int i = 0; i < 4; ++i) qh[i] = uint8_t(bits >> (8 * i));
}

// Fills nibbles (element j low, element j + 16 high) and, for 5-bit formats,
// the fifth bits from q[0..32).
void pack_low_high(const int* q, uint8_t* qs, uint8_t* qh) {
    uint32_t bits = 0;
    for (int j = 0; j < 16; ++j) {
        qs[j] = uint8_t((q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4));
        bits |= uint32_t((q[j] >> 4) & 1) << j;
        bits |= uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh) store_qh(qh, bits);
}

constexpr int kQK = 32;

}  // namespace

// ---------------------------------------------------------------- Q4_0

void to_float_q4_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ4_0*>(src);
    const int64_t nb = block_count(n, kQK4_0);
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < 16; ++j) {
            dst[j] = float((b[i].qs[j] & 0x0f) - 8) * d;
            dst[j + 16] = float((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void from_float_q4_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ4_0*>(dst);
    const int64_t nb = block_count(n, kQK4_0);
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (any_non_finite(src, kQK)) {
            b[i].d = kF16PoisonNaN;
            std::memset(b[i].qs, 0, sizeof(b[i].qs));
            continue;
        }
        const float d = signed_absmax(src, kQK) / -8.0f;  // the extreme maps to -8, the one-sided end
        const float id = safe_inverse(d);
        b[i].d = fp32_to_fp16(d);
        int q[kQK];
        for (int j = 0; j < kQK; ++j) q[j] = std::clamp(int(src[j] * id + 8.5f), 0, 15);
        pack_low_high(q, b[i].qs, nullptr);
    }
}

void vec_dot_q4_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int64_t nb = block_count(n, kQK4_0);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += ((x[i].qs[j] & 0x0f) - 8) * y[i].qs[j];
            isum += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q4_1

void to_float_q4_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ4_1*>(src);
    const int64_t nb = block_count(n, kQK4_1);
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < 16; ++j) {
            dst[j] = float(b[i].qs[j] & 0x0f) * d + m;
            dst[j + 16] = float(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void from_float_q4_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ4_1*>(dst);
    const int64_t nb = block_count(n, kQK4_1);
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (any_non_finite(src, kQK)) {
            b[i].d = b[i].m = kF16PoisonNaN;
            std::memset(b[i].qs, 0, sizeof(b[i].qs));
            continue;
        }
        float lo, hi;
        min_max(src, kQK, &lo, &hi);
        const float d = (hi - lo) / 15.0f;
        const float id = safe_inverse(d);
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(lo);
        int q[kQK];
        for (int j = 0; j < kQK; ++j) q[j] = std::clamp(int((src[j] - lo) * id + 0.5f), 0, 15);
        pack_low_high(q, b[i].qs, nullptr);
    }
}

void vec_dot_q4_1_q8_1(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    const int64_t nb = block_count(n, kQK4_1);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += (x[i].qs[j] & 0x0f) * y[i].qs[j];
            isum += (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        }
        // sum_j (d q_j + m) y_j = d dy sum_j q_j qy_j + m s, with s = dy sum_j qy_j stored in the Q8_1 block
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum) + fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q5_0

void to_float_q5_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ5_0*>(src);
    const int64_t nb = block_count(n, kQK5_0);
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        const float d = fp16_to_fp32(b[i].d);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; ++j) {
            const int q0 = (b[i].qs[j] & 0x0f) | int(((qh >> j) & 1) << 4);
            const int q1 = (b[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
            dst[j] = float(q0 - 16) * d;
            dst[j + 16] = float(q1 - 16) * d;
        }
    }
}

void from_float_q5_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ5_0*>(dst);
    const int64_t nb = block_count(n, kQK5_0);
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (any_non_finite(src, kQK)) {
            b[i].d = kF16PoisonNaN;
            std::memset(b[i].qh, 0, sizeof(b[i].qh));
            std::memset(b[i].qs, 0, sizeof(b[i].qs));
            continue;
        }
        const float d = signed_absmax(src, kQK) / -16.0f;
        const float id = safe_inverse(d);
        b[i].d = fp32_to_fp16(d);
        int q[kQK];
        for (int j = 0; j < kQK; ++j) q[j] = std::clamp(int(src[j] * id + 16.5f), 0, 31);
        pack_low_high(q, b[i].qs, b[i].qh);
    }
}

void vec_dot_q5_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int64_t nb = block_count(n, kQK5_0);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const uint32_t qh = load_qh(x[i].qh);
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = (x[i].qs[j] & 0x0f) | int(((qh >> j) & 1) << 4);
            const int q1 = (x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
            isum += (q0 - 16) * y[i].qs[j] + (q1 - 16) * y[i].qs[j + 16];
        }
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q5_1

void to_float_q5_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ5_1*>(src);
    const int64_t nb = block_count(n, kQK5_1);
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        const float d = fp16_to_fp32(b[i].d);
        const float m = fp16_to_fp32(b[i].m);
        const uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; ++j) {
            const int q0 = (b[i].qs[j] & 0x0f) | int(((qh >> j) & 1) << 4);
            const int q1 = (b[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
            dst[j] = float(q0) * d + m;
            dst[j + 16] = float(q1) * d + m;
        }
    }
}

void from_float_q5_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ5_1*>(dst);
    const int64_t nb = block_count(n, kQK5_1);
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (any_non_finite(src, kQK)) {
            b[i].d = b[i].m = kF16PoisonNaN;
            std::memset(b[i].qh, 0, sizeof(b[i].qh));
            std::memset(b[i].qs, 0, sizeof(b[i].qs));
            continue;
        }
        float lo, hi;
        min_max(src, kQK, &lo, &hi);
        const float d = (hi - lo) / 31.0f;
        const float id = safe_inverse(d);
        b[i].d = fp32_to_fp16(d);
        b[i].m = fp32_to_fp16(lo);
        int q[kQK];
        for (int j = 0; j < kQK; ++j) q[j] = std::clamp(int((src[j] - lo) * id + 0.5f), 0, 31);
        pack_low_high(q, b[i].qs, b[i].qh);
    }
}

void vec_dot_q5_1_q8_1(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    const int64_t nb = block_count(n, kQK5_1);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const uint32_t qh = load_qh(x[i].qh);
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = (x[i].qs[j] & 0x0f) | int(((qh >> j) & 1) << 4);
            const int q1 = (x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
            isum += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
        }
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum) + fp16_to_fp32(x[i].m) * fp16_to_fp32(y[i].s);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q8_0

void to_float_q8_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ8_0*>(src);
    const int64_t nb = block_count(n, kQK8_0);
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < kQK; ++j) dst[j] = float(b[i].qs[j]) * d;
    }
}

namespace {

// Shared by Q8_0 and Q8_1: d = absmax / 127 in f32, q = round-half-away(x / d).
// Returns d (f32) and fills q; the caller stores d and, for Q8_1, the sum.
float quantize_q8_block(const float* x, int8_t* q) {
    const float d = absmax(x, kQK) / 127.0f;
    const float id = safe_inverse(d);
    for (int j = 0; j < kQK; ++j) q[j] = int8_t(std::clamp(std::round(x[j] * id), -127.0f, 127.0f));
    return d;
}

}  // namespace

void from_float_q8_0(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_0*>(dst);
    const int64_t nb = block_count(n, kQK8_0);
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (any_non_finite(src, kQK)) {
            b[i].d = kF16PoisonNaN;
            std::memset(b[i].qs, 0, sizeof(b[i].qs));
            continue;
        }
        b[i].d = fp32_to_fp16(quantize_q8_block(src, b[i].qs));
    }
}

void vec_dot_q8_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    const int64_t nb = block_count(n, kQK8_0);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int isum = 0;
        for (int j = 0; j < kQK; ++j) isum += x[i].qs[j] * y[i].qs[j];
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    *s = sum;
}

// ---------------------------------------------------------------- Q8_1

void to_float_q8_1(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ8_1*>(src);
    const int64_t nb = block_count(n, kQK8_1);
    for (int64_t i = 0; i < nb; ++i, dst += kQK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < kQK; ++j) dst[j] = float(b[i].qs[j]) * d;
    }
}

void from_float_q8_1(const float* src, void* dst, int64_t n) {
    auto* b = static_cast<BlockQ8_1*>(dst);
    const int64_t nb = block_count(n, kQK8_1);
    for (int64_t i = 0; i < nb; ++i, src += kQK) {
        if (any_non_finite(src, kQK)) {
            b[i].d = b[i].s = kF16PoisonNaN;
            std::memset(b[i].qs, 0, sizeof(b[i].qs));
            continue;
        }
        const float d = quantize_q8_block(src, b[i].qs);
        int sum = 0;
        for (int j = 0; j < kQK; ++j) sum += b[i].qs[j];
        b[i].d = fp32_to_fp16(d);
        b[i].s = fp32_to_fp16(float(sum) * d);  // from the f32 d, as ggml
    }
}

void vec_dot_q8_1_q8_1(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    const int64_t nb = block_count(n, kQK8_1);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int isum = 0;
        for (int j = 0; j < kQK; ++j) isum += x[i].qs[j] * y[i].qs[j];
        sum += fp16_to_fp32(x[i].d) * fp16_to_fp32(y[i].d) * float(isum);
    }
    *s = sum;
}

}  // namespace moelite::ref
