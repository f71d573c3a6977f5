// Internal: the AVX-512 kernels, shared by kernels_avx512.cpp (F, BW, VL, DQ)
// and kernels_avx512vnni.cpp (the same plus VNNI), which include this file
// once each after defining MOELITE_AVX512_VNNI to 0 or 1. The only difference
// is the byte dot product: maddubs + madd without VNNI, one vpdpbusd with it.
//
// Everything here has internal linkage (an anonymous namespace), so each
// translation unit keeps its own copy, built with its own flags; the rules of
// kernels_avx2.cpp apply (plain headers, no standard-library templates).
//
// Kernels: dot products of Q4_0 and Q8_0 (two 32-element blocks per 512-bit
// register), Q4_K, Q5_K and Q6_K (64 elements per register), f32 and f16
// (masked loads for the tail), and the Q8_0 / Q8_K quantizers. Each is the
// scalar reference in another summation order; the quantizers write the
// reference's bytes (same rounding, same treatment of zero, tiny and
// non-finite blocks). The other types fall through to the AVX2 table.
//
// These kernels were written on a machine without AVX-512: they are exercised
// by tests/test_kernels.cpp wherever the CPU has AVX-512.
#pragma once

#ifndef MOELITE_AVX512_VNNI
#error "define MOELITE_AVX512_VNNI to 0 or 1 before including quant/kernels_avx512_body.h"
#endif

#include "quant/simd_avx2.h"  // the 256-bit helpers (h2f, loads, sums, unpacking), internal copies

namespace moelite {
namespace {

// ---------------------------------------------------------------- helpers


inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }

inline __m512i join256(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

// 8 lanes of a, then 8 of b.
inline __m512 pair_ps(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }
inline __m512i pair_epi32(int a, int b) { return join256(_mm256_set1_epi32(a), _mm256_set1_epi32(b)); }



// Sums of u[i] * s[i] over each group of 4 bytes, as int32; u unsigned, s
// signed. Without VNNI each adjacent pair of products must stay within int16
// (every caller notes its bound); with VNNI nothing saturates.
inline __m512i dot4_u8_i8(__m512i u, __m512i s) {
#if MOELITE_AVX512_VNNI
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
#else
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
#endif
}

inline __m256i dot4_u8_i8_256(__m256i u, __m256i s) {
#if MOELITE_AVX512_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// Signed by signed: |x| times y with x's sign. Exact for any x and any y but
// -128 (activations never hold -128); pairs stay within 128 * 127 * 2.
inline __m512i dot4_i8_i8(__m512i x, __m512i y) {
    const __mmask64 negative = _mm512_movepi8_mask(x);
    return dot4_u8_i8(_mm512_abs_epi8(x), _mm512_mask_sub_epi8(y, negative, _mm512_setzero_si512(), y));
}

inline __m256i dot4_i8_i8_256(__m256i x, __m256i y) {
    return dot4_u8_i8_256(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}





// ------------------------------------------------------- Q4_0, Q8_0 x Q8_0

// Two blocks per step (block i in the low 256 bits, i + 1 in the high ones),
// the odd last block in 256 bits. quant(i) gives block i's signed quants.
template <typename XBlock, typename Quants>
inline float dot_q8_0_pairs(int64_t nb, const XBlock* x, const BlockQ8_0* y, Quants quant) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const __m512i qx = join256(quant(i), quant(i + 1));
        const __m512i qy = join256(load256(y[i].qs), load256(y[i + 1].qs));
        const __m512 d = pair_ps(h2f(x[i].d) * h2f(y[i].d), h2f(x[i + 1].d) * h2f(y[i + 1].d));
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot4_i8_i8(qx, qy)), acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    if (i < nb) {
        const __m256 sumi = _mm256_cvtepi32_ps(dot4_i8_i8_256(quant(i), load256(y[i].qs)));
        sum += h2f(x[i].d) * h2f(y[i].d) * hsum_ps(sumi);
    }
    return sum;
}

void vec_dot_q4_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    // q - 8 in -8..7
    *s = dot_q8_0_pairs(n / kQK4_0, x, y,
                        [x](int64_t i) { return _mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8)); });
}

void vec_dot_q8_0_q8_0(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ8_0*>(vx);
    const auto* y = static_cast<const BlockQ8_0*>(vy);
    *s = dot_q8_0_pairs(n / kQK8_0, x, y, [x](int64_t i) { return load256(x[i].qs); });
}

// ------------------------------------------------------------ K-quants

// Q4_K and Q5_K: 64 elements per step, the low nibbles of 32 bytes (sub-block
// 2j) in the low half of the register, the high nibbles (2j + 1) in the high
// half; q5_bits adds the fifth bits (zero for Q4_K). Products u <= 31 by
// |y| <= 127: pairs within int16.
template <typename XBlock, typename HighBits>
inline float dot_k4(int64_t nb, const XBlock* x, const BlockQ8_K* y, HighBits high_bits) {
    float sum = 0.0f;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        alignas(16) uint8_t scales[8], mins[8];
        unpack_scales_k4(x[i].scales, scales, mins);
        const int min_sum = k4_min_sum(mins, y[i].bsums);
        __m512i sumi = _mm512_setzero_si512();
        for (int j = 0; j < 4; ++j) {
            const __m256i q = load256(x[i].qs + 32 * j);
            __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            high_bits(i, j, &lo, &hi);
            const __m512i p = dot4_u8_i8(join256(lo, hi), load512(y[i].qs + 64 * j));
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(p, pair_epi32(scales[2 * j], scales[2 * j + 1])));
        }
        sum += d * float(_mm512_reduce_add_epi32(sumi)) - dmin * float(min_sum);
    }
    return sum;
}

void vec_dot_q4_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ4_K*>(vx);
    *s = dot_k4(n / kQK_K, x, static_cast<const BlockQ8_K*>(vy), [](int64_t, int, __m256i*, __m256i*) {});
}

void vec_dot_q5_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ5_K*>(vx);
    // element 64j + l takes bit 2j of qh[l], element 64j + 32 + l bit 2j + 1
    *s = dot_k4(n / kQK_K, x, static_cast<const BlockQ8_K*>(vy), [x](int64_t i, int j, __m256i* lo, __m256i* hi) {
        const __m256i qh = load256(x[i].qh);
        *lo = _mm256_or_si256(*lo, bit_at(qh, 2 * j, 4));
        *hi = _mm256_or_si256(*hi, bit_at(qh, 2 * j + 1, 4));
    });
}

// Q6_K: unsigned quants (0..63; pairs <= 2 * 63 * 127) and the offset 32
// taken off through the Q8_K sums, in integers. Each half of 128 makes two
// registers of 64 elements; int32 lane k holds elements 4k..4k+3, so the
// scale of 16 elements covers 4 lanes.
void vec_dot_q6_K_q8_K(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const BlockQ6_K*>(vx);
    const auto* y = static_cast<const BlockQ8_K*>(vy);
    const int64_t nb = n / kQK_K;
    const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(0x03);
    const __m128i spread = _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const float d = y[i].d * h2f(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(x[i].scales));
        const int offset = hsum_epi32(_mm256_madd_epi16(sc16, load256(y[i].bsums)));
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = x[i].ql + 64 * h;
            const int8_t* q8 = y[i].qs + 128 * h;
            const __m256i ql0 = load256(ql), ql1 = load256(ql + 32);
            const __m256i qh = load256(x[i].qh + 32 * h);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
            int32_t sc_lo, sc_hi;  // scales 0..3 and 4..7 of this half
            std::memcpy(&sc_lo, x[i].scales + 8 * h, 4);
            std::memcpy(&sc_hi, x[i].scales + 8 * h + 4, 4);
            const __m512i s_lo = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(sc_lo), spread));
            const __m512i s_hi = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(sc_hi), spread));
            const __m512i p_lo = dot4_u8_i8(join256(q0, q1), load512(q8));
            const __m512i p_hi = dot4_u8_i8(join256(q2, q3), load512(q8 + 64));
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(p_lo, s_lo));
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(p_hi, s_hi));
        }
        sum += d * float(_mm512_reduce_add_epi32(sumi) - 32 * offset);
    }
    *s = sum;
}

// ------------------------------------------------------------ float dots

// All-ones in the first `count` (< 16) lanes.
inline __mmask16 tail_mask(int64_t count) { return __mmask16((1u << count) - 1u); }

void vec_dot_f32(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const float*>(vx);
    const auto* y = static_cast<const float*>(vy);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

inline __m512 load_f16x16(const uint16_t* p) { return _mm512_cvtph_ps(load256(p)); }

void vec_dot_f16(int64_t n, float* s, const void* vx, const void* vy) {
    const auto* x = static_cast<const uint16_t*>(vx);
    const auto* y = static_cast<const uint16_t*>(vy);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(load_f16x16(x + i), load_f16x16(y + i), a0);
        a1 = _mm512_fmadd_ps(load_f16x16(x + i + 16), load_f16x16(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(load_f16x16(x + i + 32), load_f16x16(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(load_f16x16(x + i + 48), load_f16x16(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(load_f16x16(x + i), load_f16x16(y + i), a0);
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 xt = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i));
        const __m512 yt = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, y + i));
        a1 = _mm512_fmadd_ps(xt, yt, a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// ---------------------------------------------------------- quantizers

constexpr uint16_t kF16PoisonNaN = 0x7e00;  // scale of a block quantized from non-finite input

inline __mmask16 non_finite(__m512 v) {
    return _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(3.402823466e38f), _CMP_NLE_UQ);
}

inline float safe_inverse(float d) {
    if (d == 0.0f) return 0.0f;
    const float id = 1.0f / d;
    return (id - id) == 0.0f ? id : 0.0f;
}

// roundf(): halfway cases away from zero; v - trunc(v) is exact.
inline __m512 round_half_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 away = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));  // copysign(1, v)
    return _mm512_mask_add_ps(t, away, t, one);
}

void quantize_row_q8_0(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(vy);
    for (int64_t i = 0; i < n / kQK8_0; ++i, x += kQK8_0) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        if (non_finite(v0) | non_finite(v1)) {
            y[i].d = kF16PoisonNaN;
            std::memset(y[i].qs, 0, sizeof(y[i].qs));
            continue;
        }
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const __m512 mul = _mm512_set1_ps(safe_inverse(d));
        // |q| <= 127, so the truncating narrowing keeps every value
        const __m512i q0 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v0, mul)));
        const __m512i q1 = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(v1, mul)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16), _mm512_cvtepi32_epi8(q1));
        y[i].d = fp32_to_fp16(d);
    }
}

// Q8_K as kernels_avx2.cpp: scale from the first element of largest
// magnitude, with its sign; round to nearest even; -127..127; d = 1 / iscale.
void quantize_row_q8_K(const float* x, void* vy, int64_t n) {
    auto* y = static_cast<BlockQ8_K*>(vy);
    for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
        __m512 m = _mm512_setzero_ps();
        __mmask16 bad = 0;
        for (int k = 0; k < kQK_K; k += 16) {
            const __m512 v = _mm512_loadu_ps(x + k);
            bad |= non_finite(v);
            m = _mm512_max_ps(m, _mm512_abs_ps(v));
        }
        const float amax = _mm512_reduce_max_ps(m);
        float max = 0.0f;
        const __m512 amax16 = _mm512_set1_ps(amax);
        for (int k = 0; k < kQK_K && !bad && amax != 0.0f; k += 16) {
            const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + k)), amax16, _CMP_EQ_OQ);
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
        const __m512 mul = _mm512_set1_ps(iscale);
        const __m512i hi = _mm512_set1_epi32(127), lo = _mm512_set1_epi32(-127);
        for (int g = 0; g < kQK_K / 16; ++g) {
            const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), mul);
            const __m512 r = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            const __m512i q = _mm512_max_epi32(_mm512_min_epi32(_mm512_cvttps_epi32(r), hi), lo);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * g), _mm512_cvtepi32_epi8(q));
            y[i].bsums[g] = int16_t(_mm512_reduce_add_epi32(q));
        }
        y[i].d = 1.0f / iscale;
    }
}

void register_avx512_kernels(VecDotFn* vec_dot, FromFloatFn* quantize_row) {
    vec_dot[uint32_t(DType::F32)] = vec_dot_f32;
    vec_dot[uint32_t(DType::F16)] = vec_dot_f16;
    vec_dot[uint32_t(DType::Q4_0)] = vec_dot_q4_0_q8_0;
    vec_dot[uint32_t(DType::Q8_0)] = vec_dot_q8_0_q8_0;
    vec_dot[uint32_t(DType::Q4_K)] = vec_dot_q4_K_q8_K;
    vec_dot[uint32_t(DType::Q5_K)] = vec_dot_q5_K_q8_K;
    vec_dot[uint32_t(DType::Q6_K)] = vec_dot_q6_K_q8_K;
    quantize_row[uint32_t(DType::Q8_0)] = quantize_row_q8_0;
    quantize_row[uint32_t(DType::Q8_K)] = quantize_row_q8_K;
}

}  // namespace
}  // namespace moelite
