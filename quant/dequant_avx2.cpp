// AVX2 row dequantizers (to_float) of the weight types models use most: with
// the BF16 quantize_row of kernels_avx2.cpp they turn a weight row into bf16
// for mul_mat's AMX path (backends/cpu/ops_matmul.cpp); get_rows uses them
// too.
//
// Each gives the reference's floats bit for bit (quant/ref.h): the same
// products in the same order, f16 fields widened first. The subtraction of
// Q4_K/Q5_K's min stays apart from its product: this file is built with
// -ffp-contract=off (CMakeLists.txt) so that the compiler cannot fuse them.
//
// The rules of kernels_avx2.cpp apply: AVX2 flags by file name, plain headers,
// everything internal but the registration function.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/kernels_isa.h"
#include "quant/simd_avx2.h"

namespace moelite {
namespace {

// 32 signed bytes as 4 x 8 floats.
inline void signed_floats(__m256i q, __m256* out) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

// 32 signed bytes times d, into 32 floats.
inline void store_scaled(__m256i q, __m256 d, float* dst) {
    __m256 f[4];
    signed_floats(q, f);
    for (int p = 0; p < 4; ++p) _mm256_storeu_ps(dst + 8 * p, _mm256_mul_ps(f[p], d));
}

// 32 unsigned bytes times d minus m, into 32 floats (the K-quants' d * q - m).
inline void store_scaled_min(__m256i q, __m256 d, __m256 m, float* dst) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int p = 0; p < 4; ++p) {
        const __m256 prod = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[p])), d);
        _mm256_storeu_ps(dst + 8 * p, _mm256_sub_ps(prod, m));
    }
}

void to_float_q4_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ4_0*>(src);
    for (int64_t i = 0; i < n / 32; ++i, dst += 32) {
        const __m256i q = _mm256_sub_epi8(unpack_nibbles(b[i].qs), _mm256_set1_epi8(8));
        store_scaled(q, _mm256_set1_ps(h2f(b[i].d)), dst);
    }
}

void to_float_q5_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ5_0*>(src);
    for (int64_t i = 0; i < n / 32; ++i, dst += 32) {
        const __m256i q5 = _mm256_or_si256(unpack_nibbles(b[i].qs), q5_high_bits(b[i].qh));
        store_scaled(_mm256_sub_epi8(q5, _mm256_set1_epi8(16)), _mm256_set1_ps(h2f(b[i].d)), dst);
    }
}

void to_float_q8_0(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ8_0*>(src);
    for (int64_t i = 0; i < n / 32; ++i, dst += 32) store_scaled(load256(b[i].qs), _mm256_set1_ps(h2f(b[i].d)), dst);
}

// The K-quants' activation type (mul_mat's AMX path rounds activations through it).
void to_float_q8_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ8_K*>(src);
    for (int64_t i = 0; i < n / 256; ++i, dst += 256) {
        const __m256 d = _mm256_set1_ps(b[i].d);
        for (int j = 0; j < 8; ++j) store_scaled(load256(b[i].qs + 32 * j), d, dst + 32 * j);
    }
}

// Q4_K and Q5_K: 8 sub-blocks of 32, sub-block 2j the low nibbles of bytes
// [32j, 32j + 32) of qs and 2j + 1 their high nibbles; Q5_K's fifth bit of
// element e is bit e / 32 of qh[e % 32].
template <bool Five, typename Block>
void to_float_k4(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const Block*>(src);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < n / 256; ++i, dst += 256) {
        uint8_t scales[8], mins[8];
        unpack_scales_k4(b[i].scales, scales, mins);
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        __m256i high = _mm256_setzero_si256();
        if constexpr (Five) high = load256(b[i].qh);
        for (int j = 0; j < 4; ++j) {
            const __m256i packed = load256(b[i].qs + 32 * j);
            __m256i q0 = _mm256_and_si256(packed, low4);
            __m256i q1 = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
            if constexpr (Five) {
                q0 = _mm256_or_si256(q0, bit_at(high, 2 * j, 4));
                q1 = _mm256_or_si256(q1, bit_at(high, 2 * j + 1, 4));
            }
            const int s0 = 2 * j, s1 = 2 * j + 1;
            store_scaled_min(q0, _mm256_set1_ps(d * float(scales[s0])), _mm256_set1_ps(dmin * float(mins[s0])),
                             dst + 32 * s0);
            store_scaled_min(q1, _mm256_set1_ps(d * float(scales[s1])), _mm256_set1_ps(dmin * float(mins[s1])),
                             dst + 32 * s1);
        }
    }
}

// Q6_K: element 128h + 32k + l has its low 4 bits in ql[64h + 32(k % 2) + l]
// (the high nibble for k >= 2) and its top 2 in bits 2k of qh[32h + l]; minus
// 32; scale s covers elements [16s, 16s + 16).
void to_float_q6_K(const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const BlockQ6_K*>(src);
    const __m256i low4 = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(3), offset = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / 256; ++i, dst += 256) {
        const float d = h2f(b[i].d);
        for (int h = 0; h < 2; ++h) {
            const __m256i qh = load256(b[i].qh + 32 * h);
            const __m256i ql0 = load256(b[i].ql + 64 * h), ql1 = load256(b[i].ql + 64 * h + 32);
            for (int k = 0; k < 4; ++k) {
                const __m256i ql = k % 2 == 0 ? ql0 : ql1;
                const __m256i low = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
                const __m256i top = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two);
                const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(top, 4)), offset);
                // Two scales per 32 elements, one per half.
                float* out = dst + 128 * h + 32 * k;
                const int s = (128 * h + 32 * k) / 16;
                const __m256 d0 = _mm256_set1_ps(d * float(b[i].scales[s]));
                const __m256 d1 = _mm256_set1_ps(d * float(b[i].scales[s + 1]));
                __m256 f[4];
                signed_floats(q, f);
                _mm256_storeu_ps(out, _mm256_mul_ps(f[0], d0));
                _mm256_storeu_ps(out + 8, _mm256_mul_ps(f[1], d0));
                _mm256_storeu_ps(out + 16, _mm256_mul_ps(f[2], d1));
                _mm256_storeu_ps(out + 24, _mm256_mul_ps(f[3], d1));
            }
        }
    }
}

}  // namespace

void fill_dequant_avx2(ToFloatFn* to_float) {
    to_float[uint32_t(DType::Q4_0)] = to_float_q4_0;
    to_float[uint32_t(DType::Q5_0)] = to_float_q5_0;
    to_float[uint32_t(DType::Q8_0)] = to_float_q8_0;
    to_float[uint32_t(DType::Q4_K)] = to_float_k4<false, BlockQ4_K>;
    to_float[uint32_t(DType::Q5_K)] = to_float_k4<true, BlockQ5_K>;
    to_float[uint32_t(DType::Q6_K)] = to_float_q6_K;
    to_float[uint32_t(DType::Q8_K)] = to_float_q8_K;
}

}  // namespace moelite
