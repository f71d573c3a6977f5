// AVX2 helpers shared by the AVX2 translation units (quant/kernels_avx2.cpp,
// quant/gemm_avx2.cpp) and the AVX-512 ones (quant/kernels_avx512_body.h,
// whose flags include AVX2's): loads, horizontal sums, the integer dot idioms
// and the unpacking of packed quants and scales.
//
// Included only by files built with AVX2 (or higher) flags. Everything here sits in an
// anonymous namespace, so each including file gets its own internal copy and
// the linker never sees a symbol it could merge with baseline code (see
// quant/kernels_isa.h).
//
// Integer idiom: _mm256_maddubs_epi16 multiplies unsigned by signed bytes and
// adds adjacent pairs into int16; _mm256_madd_epi16 then adds adjacent int16
// (or weights them by a scale) into int32. A pair of products must stay
// within int16; callers note their bounds.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "quant/blocks.h"

namespace moelite {
namespace {

inline float h2f(fp16_bits h) {
    return _cvtsh_ss(h);
}

inline __m256i load256(const void* p) {
    return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline __m128i load128(const void* p) {
    return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline int hsum_epi32_128(__m128i s) {
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

inline int hsum_epi32(__m256i v) {
    return hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

inline float hmax_ps(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

inline __m256 abs_ps(__m256 v) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

// Sum of u[i] * s[i] over each group of 4 bytes, as 8 int32; u unsigned, s
// signed. Each adjacent pair must satisfy |u0*s0 + u1*s1| <= 32767.
inline __m256i dot_u8_i8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// As dot_u8_i8 for two signed operands: |x| times y with x's sign. Exact for
// any x and any y but -128 (the activation side never holds -128).
inline __m256i dot_i8_i8(__m256i x, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// 16 bytes of packed nibbles -> 32 bytes 0..15: the low nibbles (elements
// 0..15 of a Q4_0-style block), then the high ones (elements 16..31).
inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m128i v = load128(qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// 32 bits (little-endian in 4 bytes) -> 32 bytes, 0xff where bit j is set.
inline __m256i expand_bits(const uint8_t* p) {
    uint32_t bits;
    std::memcpy(&bits, p, 4);
    // byte j takes byte j/8 of the word, then tests bit j%8 of it
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(int(bits)),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i others = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);  // every bit but j%8
    return _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1));
}

// Bit 4 of each element of a Q5 block from its qh word.
inline __m256i q5_high_bits(const uint8_t* qh) {
    return _mm256_and_si256(expand_bits(qh), _mm256_set1_epi8(0x10));
}

// Each byte's bit `shift`, moved to bit `to` (shifting 16-bit lanes is safe:
// the bits that cross a byte boundary are masked off).
inline __m256i bit_at(__m256i v, int shift, int to) {
    return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(1)), to);
}

// int16 weights for madd after maddubs: the low 128 bits (elements 0..15 of a
// 32-byte group) get a, the high ones b.
inline __m256i scale_pair(int a, int b) {
    return _mm256_set_m128i(_mm_set1_epi16(int16_t(b)), _mm_set1_epi16(int16_t(a)));
}

// The 8 six-bit scales and mins of a Q4_K / Q5_K block, unpacked 4 at a time:
// sub-blocks 0..3 keep the low 6 bits of bytes 0..3 (scales) and 4..7 (mins);
// sub-blocks 4..7 take their low 4 bits from bytes 8..11 and their top 2 bits
// from the spare top bits of bytes 0..3 (scales) and 4..7 (mins).
inline void unpack_scales_k4(const uint8_t* packed, uint8_t* scales, uint8_t* mins) {
    uint32_t u0, u1, u2;
    std::memcpy(&u0, packed, 4);
    std::memcpy(&u1, packed + 4, 4);
    std::memcpy(&u2, packed + 8, 4);
    const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
    const uint32_t mn_lo = u1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | (((u1 >> 6) & 0x03030303u) << 4);
    std::memcpy(scales, &sc_lo, 4);
    std::memcpy(scales + 4, &sc_hi, 4);
    std::memcpy(mins, &mn_lo, 4);
    std::memcpy(mins + 4, &mn_hi, 4);
}

// The 16 six-bit scales of a Q3_K block, minus their offset 32, as int8:
// scale j keeps its low 4 bits in byte j % 8 (the low nibble for j < 8, the
// high one after) and its top 2 bits in byte 8 + j % 4, at bit 2 * (j / 4).
// Four scales at a time, one per byte of a 32-bit word.
inline __m128i unpack_scales_q3k(const uint8_t* packed) {
    uint32_t a0, a1, top;
    std::memcpy(&a0, packed, 4);
    std::memcpy(&a1, packed + 4, 4);
    std::memcpy(&top, packed + 8, 4);
    const uint32_t nib = 0x0f0f0f0fu, two = 0x03030303u;
    const uint32_t s0 = (a0 & nib) | ((top & two) << 4);
    const uint32_t s1 = (a1 & nib) | (((top >> 2) & two) << 4);
    const uint32_t s2 = ((a0 >> 4) & nib) | (((top >> 4) & two) << 4);
    const uint32_t s3 = ((a1 >> 4) & nib) | (((top >> 6) & two) << 4);
    return _mm_sub_epi8(_mm_setr_epi32(int(s0), int(s1), int(s2), int(s3)), _mm_set1_epi8(32));
}

// Sum over the 8 sub-blocks of 32 of mins[j] * (sum of their activation quants),
// from the Q8_K per-16 sums.
inline int k4_min_sum(const uint8_t* mins, const int16_t* bsums) {
    const __m128i pair_sums = _mm_hadd_epi16(load128(bsums), load128(bsums + 8));  // |.| <= 2 * 16 * 127
    const __m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins)));
    return hsum_epi32_128(_mm_madd_epi16(m, pair_sums));
}

// exp(x) for x <= 0 (and -inf): 2^n * e^f with n = round(x / ln 2) and f in
// [-ln 2 / 2, ln 2 / 2], e^f from its degree-6 Taylor-like polynomial (the
// classic single-precision coefficients); below -87.3 the result is 0
// (std::exp gives a subnormal there).
inline __m256 exp_nonpositive(__m256 x) {
    const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);  // NaN stays NaN
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // f = x - n ln 2, with ln 2 in two parts so the product is exact enough.
    __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    f = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), f);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(f, f), _mm256_add_ps(f, _mm256_set1_ps(1.0f)));
    const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(y, _mm256_castsi256_ps(scale)));
}

}  // namespace
}  // namespace moelite
