// AVX2 kernels (with FMA, F16C, BMI2): dot products of every legacy and
// K-quant weight type with its activation type, f32/f16/bf16 dots, and the
// activation quantizers. Each is the scalar reference of quant/quant.h
// computed in another order: the integer parts are exact, only the float sums
// of per-block results are added in a different order (the K-quants reduce
// each super-block to integers first, as the reference does). The quantizers
// write the reference's bytes: the same rounding (roundf for Q8_0/Q8_1, to
// nearest even for Q8_K, f16, bf16) and the same zero, tiny and non-finite
// ("poisoned", quant/quant.h) blocks.
//
// Built with AVX2 flags (CMakeLists.txt, by file name) and reached only
// through fill_kernels_avx2 once the CPU is known to support AVX2. So that no
// AVX2 code can be merged into baseline code by the linker, this file includes
// only plain headers, defines everything in an anonymous namespace except the
// registration function, and uses no standard-library templates (its own
// templates and lambdas have internal linkage, like everything else here).
//
// Integer idiom: _mm256_maddubs_epi16 multiplies unsigned by signed bytes and
// adds adjacent pairs into int16; _mm256_madd_epi16 then adds adjacent int16
// (or weights them by a scale) into int32. Every bound is noted where used: a
// pair of products must stay within int16. Activation quants (Q8_0, Q8_1,
// Q8_K) are in -127..127, as every quantizer here and in the reference writes
// them; weight quants may take any value their bits allow.
#include <immintrin.h>
#include <math.h>

#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/kernels_isa.h"
#include "quant/simd_avx2.h"

namespace moelite {
namespace {

// ------------------------------------------------- legacy quants (32 per block)

// Runs block(i, acc, offsets) over the nb blocks of a row with two vector and
// two scalar accumulators, so that consecutive blocks do not wait on each
// other's additions; returns the sum of all four.
template <typename Block>
inline float sum_blocks(int64_t nb, Block block) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float off0 = 0.0f, off1 = 0.0f;
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        acc0 = block(i, acc0, off0);
        acc1 = block(i + 1, acc1, off1);
    }
    if (i < nb) acc0 = block(i, acc0, off0);
    return hsum_ps(_mm256_add_ps(acc0, acc1)) + (off0 + off1);
}

void vec_dot_q4_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    *s = sum_blocks(n / kQK4_0, [x, y](int64_t i, __m256 acc, float&) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        // q - 8 in -8..7; |q| <= 8 and |y| <= 127 keep maddubs pairs in int16
        const __m256i qx = _mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8));
        return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_i8(qx, load256(y[i].qs))), acc);
    });
}

// x = d * q + m: sum = d * d_y * sum(q * q_y) + m * s, with s = d_y * sum(q_y)
// stored in the Q8_1 block.
void vec_dot_q4_1_q8_1(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    *s = sum_blocks(n / kQK4_1, [x, y](int64_t i, __m256 acc, float& offsets) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        offsets += h2f(x[i].m) * h2f(y[i].s);
        const __m256i sumi = dot_u8_i8(unpack_nibbles(x[i].qs), load256(y[i].qs));  // pairs <= 2 * 15 * 127
        return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    });
}

void vec_dot_q5_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    *s = sum_blocks(n / kQK5_0, [x, y](int64_t i, __m256 acc, float&) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        const __m256i q = _mm256_or_si256(unpack_nibbles(x[i].qs), q5_high_bits(x[i].qh));
        const __m256i qx = _mm256_sub_epi8(q, _mm256_set1_epi8(16));  // -16..15
        return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8_i8(qx, load256(y[i].qs))), acc);
    });
}

void vec_dot_q5_1_q8_1(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_1*>(vx);
    const auto* y = static_cast<const BlockQ8_1*>(vy);
    *s = sum_blocks(n / kQK5_1, [x, y](int64_t i, __m256 acc, float& offsets) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        offsets += h2f(x[i].m) * h2f(y[i].s);
        const __m256i q = _mm256_or_si256(unpack_nibbles(x[i].qs), q5_high_bits(x[i].qh));  // 0..31
        return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8_i8(q, load256(y[i].qs))), acc);
    });
}

void vec_dot_q8_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    *s = sum_blocks(n / kQK8_0, [x, y](int64_t i, __m256 acc, float&) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d));
        // |x| <= 128, |y| <= 127: pairs within 32512
        const __m256i sumi = dot_i8_i8(load256(x[i].qs), load256(y[i].qs));
        return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    });
}

// ------------------------------------------------------ K-quants (256 per block)

void vec_dot_q4_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = n / kQK_K;
    float sum = 0.0f;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        alignas(16) uint8_t scales[8], mins[8];
        unpack_scales_k4(x[i].scales, scales, mins);
        const int min_sum = k4_min_sum(mins, y[i].bsums);

        // 64 elements per step: the low nibbles of 32 bytes, then the high ones.
        // maddubs pairs <= 2 * 15 * 127; madd by scale <= 63: all fits int32.
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i q = load256(x[i].qs + 32 * j);
            const __m256i lo = _mm256_and_si256(q, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            const __m256i p_lo = _mm256_maddubs_epi16(lo, load256(y[i].qs + 64 * j));
            const __m256i p_hi = _mm256_maddubs_epi16(hi, load256(y[i].qs + 64 * j + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_lo, _mm256_set1_epi16(scales[2 * j])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_hi, _mm256_set1_epi16(scales[2 * j + 1])));
        }
        sum += d * float(hsum_epi32(sumi)) - dmin * float(min_sum);
    }
    *s = sum;
}

void vec_dot_q5_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = n / kQK_K;
    float sum = 0.0f;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        alignas(16) uint8_t scales[8], mins[8];
        unpack_scales_k4(x[i].scales, scales, mins);
        const int min_sum = k4_min_sum(mins, y[i].bsums);

        // Element 64j + l takes its fifth bit from bit 2j of qh[l], element
        // 64j + 32 + l from bit 2j + 1. maddubs pairs <= 2 * 31 * 127.
        const __m256i qh = load256(x[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i q = load256(x[i].qs + 32 * j);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, low4), bit_at(qh, 2 * j, 4));
            const __m256i hi =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low4), bit_at(qh, 2 * j + 1, 4));
            const __m256i p_lo = _mm256_maddubs_epi16(lo, load256(y[i].qs + 64 * j));
            const __m256i p_hi = _mm256_maddubs_epi16(hi, load256(y[i].qs + 64 * j + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_lo, _mm256_set1_epi16(scales[2 * j])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_hi, _mm256_set1_epi16(scales[2 * j + 1])));
        }
        sum += d * float(hsum_epi32(sumi)) - dmin * float(min_sum);
    }
    *s = sum;
}

// Q6_K: x = d * sc * (q - 32). The quants go in unsigned (0..63) and the
// offset comes out through the Q8_K sums: sum sc * (q.y - 32 * bsum), taken
// off in integers so that no float cancellation is added to the reference's.
void vec_dot_q6_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ6_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = n / kQK_K;
    float sum = 0.0f;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i low2 = _mm256_set1_epi8(0x03);
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(x[i].scales));
        const __m256i offset = _mm256_madd_epi16(sc16, load256(y[i].bsums));  // |.| <= 2 * 128 * 2032

        // Each half of 128: 64 bytes of low nibbles and 32 of 2-bit highs give
        // four runs of 32 elements; run r uses scales 2r and 2r + 1 of the half.
        // maddubs pairs <= 2 * 63 * 127; madd by |sc| <= 128: fits int32.
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = x[i].ql + 64 * h;
            const int8_t* sc = x[i].scales + 8 * h;
            const int8_t* q8 = y[i].qs + 128 * h;
            const __m256i ql0 = load256(ql);
            const __m256i ql1 = load256(ql + 32);
            const __m256i qh = load256(x[i].qh + 32 * h);
            const __m256i hi0 = _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4);
            const __m256i hi1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4);
            const __m256i hi2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4);
            const __m256i hi3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, low4), hi0);
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, low4), hi1);
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), hi2);
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), hi3);
            const __m256i p0 = _mm256_maddubs_epi16(q0, load256(q8));
            const __m256i p1 = _mm256_maddubs_epi16(q1, load256(q8 + 32));
            const __m256i p2 = _mm256_maddubs_epi16(q2, load256(q8 + 64));
            const __m256i p3 = _mm256_maddubs_epi16(q3, load256(q8 + 96));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, scale_pair(sc[0], sc[1])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, scale_pair(sc[2], sc[3])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p2, scale_pair(sc[4], sc[5])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p3, scale_pair(sc[6], sc[7])));
        }
        sum += d * float(hsum_epi32(_mm256_sub_epi32(sumi, _mm256_slli_epi32(offset, 5))));
    }
    *s = sum;
}

// Q2_K: x = d * sc * q - dmin * m per sub-block of 16, q 2 bits. Each half of
// 128 reads 32 bytes; shift 2r of them gives elements 32r..32r+31 of the half,
// sub-blocks 8h + 2r and 8h + 2r + 1.
void vec_dot_q2_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ2_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = n / kQK_K;
    float sum = 0.0f;
    const __m256i low2 = _mm256_set1_epi8(0x03);
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        const __m128i packed = load128(x[i].scales);
        const __m128i mins = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f));
        const int min_sum = hsum_epi32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(mins), load256(y[i].bsums)));
        alignas(16) uint8_t scales[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(scales), _mm_and_si128(packed, _mm_set1_epi8(0x0f)));

        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i q = load256(x[i].qs + 32 * h);
            for (int r = 0; r < 4; ++r) {
                const __m256i qr = _mm256_and_si256(_mm256_srli_epi16(q, 2 * r), low2);
                const __m256i p = _mm256_maddubs_epi16(qr, load256(y[i].qs + 128 * h + 32 * r));
                const int k = 8 * h + 2 * r;
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales[k], scales[k + 1])));
            }
        }
        sum += d * float(hsum_epi32(sumi)) - dmin * float(min_sum);
    }
    *s = sum;
}

// Q3_K: x = d * (sc - 32) * (q - 4 * !hbit), q 2 bits as Q2_K; run r of half
// h takes its high bit from bit 4h + r of hmask. Quants go in unsigned
// (q + 4 * hbit, 0..7) and the offset 4 comes out through the Q8_K sums, in
// integers.
void vec_dot_q3_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ3_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = n / kQK_K;
    float sum = 0.0f;
    const __m256i low2 = _mm256_set1_epi8(0x03);
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const __m128i sc8 = unpack_scales_q3k(x[i].scales);
        alignas(16) int8_t scales[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(scales), sc8);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const __m256i offset = _mm256_madd_epi16(sc16, load256(y[i].bsums));

        const __m256i hmask = load256(x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i q = load256(x[i].qs + 32 * h);
            for (int r = 0; r < 4; ++r) {
                const __m256i qr =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * r), low2), bit_at(hmask, 4 * h + r, 2));
                const __m256i p = _mm256_maddubs_epi16(qr, load256(y[i].qs + 128 * h + 32 * r));
                const int k = 8 * h + 2 * r;
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales[k], scales[k + 1])));
            }
        }
        sum += d * float(hsum_epi32(_mm256_sub_epi32(sumi, _mm256_slli_epi32(offset, 2))));
    }
    *s = sum;
}

// ------------------------------------------------------------ float dots

// Four accumulators over 32 elements, then one over 8, then a scalar tail.
void vec_dot_f32(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const float*>(vx);
    const auto* y = static_cast<const float*>(vy);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) sum += x[i] * y[i];
    *s = sum;
}

inline __m256 load_f16x8(const uint16_t* p) { return _mm256_cvtph_ps(load128(p)); }

inline __m256 load_bf16x8(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
}

void vec_dot_f16(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const uint16_t*>(vx);
    const auto* y = static_cast<const uint16_t*>(vy);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), a0);
        a1 = _mm256_fmadd_ps(load_f16x8(x + i + 8), load_f16x8(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_f16x8(x + i + 16), load_f16x8(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_f16x8(x + i + 24), load_f16x8(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_f16x8(x + i), load_f16x8(y + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) sum += h2f(x[i]) * h2f(y[i]);
    *s = sum;
}

// BF16 weights times F32 activations (see quant/quant.cpp: the activations
// are not rounded to BF16).
void vec_dot_bf16(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const uint16_t*>(vx);
    const auto* y = static_cast<const float*>(vy);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(load_bf16x8(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(load_bf16x8(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(load_bf16x8(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(load_bf16x8(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load_bf16x8(x + i), _mm256_loadu_ps(y + i), a0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; ++i) sum += bf16_to_fp32(x[i]) * y[i];
    *s = sum;
}

// ---------------------------------------------------------- quantizers

// roundf(): to nearest, halfway cases away from zero, as the Q8_0 / Q8_1
// reference rounds. v - trunc(v) is exact in float.
inline __m256 round_half_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 away = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));  // copysign(1, v)
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), away));
}

// 32 int32 (already in int8 range) -> 32 int8 in order.
inline void store_i8x32(int8_t* dst, __m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    // the packs work per 128-bit lane: dwords hold elements 0-3, 8-11, 16-19,
    // 24-27, 4-7, 12-15, 20-23, 28-31
    const __m256i ordered = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), ordered);
}

// True when any of the 8 lanes is NaN or infinite.
inline bool any_non_finite(__m256 v) {
    return _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(v), _mm256_set1_ps(3.402823466e38f), _CMP_NLE_UQ)) != 0;
}

// 1 / d, or 0 where d is zero or its inverse is not a finite float (blocks
// below ~1e-37 quantize as zero, as in the reference).
inline float safe_inverse(float d) {
    if (d == 0.0f) return 0.0f;
    const float id = 1.0f / d;
    return (id - id) == 0.0f ? id : 0.0f;
}

// f16 bits of the quiet NaN that marks a block quantized from non-finite input
// (the reference's "poisoned" block: quants 0, scale fields NaN).
constexpr uint16_t kF16PoisonNaN = 0x7e00;

// Quantizes 32 floats with d = amax / 127 (rounded as roundf); returns d and
// stores the quants; *qsum gets their sum. False, with nothing stored, when
// the block holds a NaN or an infinity.
inline bool quantize_block_32(const float* x, int8_t* qs, float* d_out, int* qsum) {
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    if (any_non_finite(v0) || any_non_finite(v1) || any_non_finite(v2) || any_non_finite(v3)) return false;
    const __m256 m = _mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)), _mm256_max_ps(abs_ps(v2), abs_ps(v3)));
    const float amax = hmax_ps(m);
    const float d = amax / 127.0f;
    const __m256 mul = _mm256_set1_ps(safe_inverse(d));
    const __m256i i0 = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v0, mul)));
    const __m256i i1 = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v1, mul)));
    const __m256i i2 = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v2, mul)));
    const __m256i i3 = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(v3, mul)));
    store_i8x32(qs, i0, i1, i2, i3);
    if (qsum) *qsum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    *d_out = d;
    return true;
}

void quantize_row_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(vy);
    for (int64_t i = 0; i < n / kQK8_0; ++i) {
        float d = 0.0f;
        if (quantize_block_32(x + i * kQK8_0, y[i].qs, &d, nullptr)) {
            y[i].d = fp32_to_fp16(d);
        } else {
            y[i].d = kF16PoisonNaN;
            std::memset(y[i].qs, 0, sizeof(y[i].qs));
        }
    }
}

void quantize_row_q8_1(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_1*>(vy);
    for (int64_t i = 0; i < n / kQK8_1; ++i) {
        float d = 0.0f;
        int sum = 0;
        if (quantize_block_32(x + i * kQK8_1, y[i].qs, &d, &sum)) {
            y[i].d = fp32_to_fp16(d);
            y[i].s = fp32_to_fp16(float(sum) * d);
        } else {
            y[i].d = y[i].s = kF16PoisonNaN;
            std::memset(y[i].qs, 0, sizeof(y[i].qs));
        }
    }
}

// Q8_K: the scale comes from the element of largest magnitude (the first one,
// with its sign): iscale = -127 / max, quants round to nearest even within
// -127..127, and d = 1 / iscale. A zero block, or one too small to scale, is
// all zero; one with a NaN or an infinity is zero with d = NaN.
void quantize_row_q8_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_K*>(vy);
    for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
        __m256 m = _mm256_setzero_ps();
        bool bad = false;
        for (int k = 0; k < kQK_K; k += 8) {
            const __m256 v = _mm256_loadu_ps(x + k);
            bad |= any_non_finite(v);
            m = _mm256_max_ps(m, abs_ps(v));
        }
        const float amax = hmax_ps(m);
        float max = 0.0f;
        const __m256 amax8 = _mm256_set1_ps(amax);
        for (int k = 0; k < kQK_K && !bad && amax != 0.0f; k += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + k)), amax8, _CMP_EQ_OQ));
            if (hit) {
                max = x[k + __builtin_ctz(unsigned(hit))];
                break;
            }
        }
        const float iscale = max != 0.0f ? -127.0f / max : 0.0f;
        if (bad || iscale == 0.0f || (iscale - iscale) != 0.0f) {
            std::memset(&y[i], 0, sizeof(y[i]));
            if (bad) y[i].d = fp_from_bits(0x7fc00000u);
            continue;
        }
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-127);
        for (int g = 0; g < kQK_K / 32; ++g) {
            __m256i q[4];
            for (int k = 0; k < 4; ++k) {
                const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), mul);
                const __m256 r = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                q[k] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvttps_epi32(r), hi), lo);
            }
            store_i8x32(y[i].qs + 32 * g, q[0], q[1], q[2], q[3]);
            // per-vector sums: hadd twice leaves, per lane, the lane's part of
            // each of q0..q3; adding the lanes finishes them
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(q[0], q[1]), _mm256_hadd_epi32(q[2], q[3]));
            const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            y[i].bsums[2 * g] = int16_t(_mm_extract_epi32(sums, 0) + _mm_extract_epi32(sums, 1));
            y[i].bsums[2 * g + 1] = int16_t(_mm_extract_epi32(sums, 2) + _mm_extract_epi32(sums, 3));
        }
        y[i].d = 1.0f / iscale;
    }
}

void quantize_row_f16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint16_t*>(vy);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
    }
    for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

// Round to nearest even on the top 16 bits; NaN stays NaN, made quiet.
inline __m256i f32_to_bf16_x8(__m256 f) {
    const __m256i v = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(v, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(v, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
    const __m256i quiet_nan = _mm256_or_si256(_mm256_srli_epi32(v, 16), _mm256_set1_epi32(0x40));
    const __m256i is_nan =
        _mm256_cmpgt_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(rounded, quiet_nan, is_nan);
}

void quantize_row_bf16(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<uint16_t*>(vy);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = f32_to_bf16_x8(_mm256_loadu_ps(x + i));
        const __m256i b = f32_to_bf16_x8(_mm256_loadu_ps(x + i + 8));
        // packus per lane gives a0-3 b0-3 a4-7 b4-7; restore the order
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), p);
    }
    for (; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

// F16 / BF16 rows to F32, 8 at a time: exact (as the references), except
// that a signalling NaN comes out quiet from F16.
void to_float_f16(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16x8(h + i));
    for (; i < n; ++i) dst[i] = h2f(h[i]);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const auto* h = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16x8(h + i));
    for (; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

void scale_add(int64_t n, float* y, float a, const float* x, float b) {
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(y + i), _mm256_mul_ps(vb, _mm256_loadu_ps(x + i))));
    for (; i < n; ++i) y[i] = a * y[i] + b * x[i];
}

// silu(g) = g * sigmoid(g), with exp taken of -|g| only: sigmoid is
// 1 / (1 + e) for g >= 0 and e / (1 + e) below, e = exp(-|g|).
void swiglu(int64_t n, const float* g, const float* u, float* out) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = exp_nonpositive(_mm256_or_ps(x, sign));  // exp(-|x|)
        const __m256 negative = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
        const __m256 sig = _mm256_div_ps(_mm256_blendv_ps(one, e, negative), _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(x, sig), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; ++i) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

}  // namespace

void fill_float_rows_avx2(ToFloatFn* to_float, ScaleAddFn* scale_add_fn, SwigluFn* swiglu_fn) {
    to_float[uint32_t(DType::F16)] = to_float_f16;
    to_float[uint32_t(DType::BF16)] = to_float_bf16;
    *scale_add_fn = scale_add;
    *swiglu_fn = swiglu;
}

void fill_kernels_avx2(VecDotFn* vec_dot, FromFloatFn* quantize_row) {
    vec_dot[uint32_t(DType::F32)] = vec_dot_f32;
    vec_dot[uint32_t(DType::F16)] = vec_dot_f16;
    vec_dot[uint32_t(DType::BF16)] = vec_dot_bf16;
    vec_dot[uint32_t(DType::Q4_0)] = vec_dot_q4_0_q8_0;
    vec_dot[uint32_t(DType::Q4_1)] = vec_dot_q4_1_q8_1;
    vec_dot[uint32_t(DType::Q5_0)] = vec_dot_q5_0_q8_0;
    vec_dot[uint32_t(DType::Q5_1)] = vec_dot_q5_1_q8_1;
    vec_dot[uint32_t(DType::Q8_0)] = vec_dot_q8_0_q8_0;
    vec_dot[uint32_t(DType::Q2_K)] = vec_dot_q2_K_q8_K;
    vec_dot[uint32_t(DType::Q3_K)] = vec_dot_q3_K_q8_K;
    vec_dot[uint32_t(DType::Q4_K)] = vec_dot_q4_K_q8_K;
    vec_dot[uint32_t(DType::Q5_K)] = vec_dot_q5_K_q8_K;
    vec_dot[uint32_t(DType::Q6_K)] = vec_dot_q6_K_q8_K;

    quantize_row[uint32_t(DType::F16)] = quantize_row_f16;
    quantize_row[uint32_t(DType::BF16)] = quantize_row_bf16;
    quantize_row[uint32_t(DType::Q8_0)] = quantize_row_q8_0;
    quantize_row[uint32_t(DType::Q8_1)] = quantize_row_q8_1;
    quantize_row[uint32_t(DType::Q8_K)] = quantize_row_q8_K;
}

}  // namespace moelite
