// Scalar reference kernels of every block format, private to quant/: the
// functions behind QuantTraits (quant/quant.cpp puts them in the table; the
// rest of the library reaches them only through quant_traits()).
//
// Conventions, shared by the ref_*.cpp files:
//  - n is a count of elements and a multiple of the block size (asserted);
//  - to_float reproduces ggml's dequantized floats bit for bit: the same
//    products in the same order (f16 fields widened first, no FMA; these files
//    are built for baseline x86-64, which has none to contract into);
//  - from_float of the simple formats (Q4_0..Q8_1, Q8_K) produces ggml's
//    reference bytes; the K-quants search their own scales (ref_kquants_search.cpp);
//  - non-finite input follows the rule in quant/quant.h: the block is
//    "poisoned" (quants 0, scale fields NaN), never undefined behaviour;
//  - vec_dot sums integer products per block and accumulates blocks in float,
//    as the integer SIMD kernels do; the float formats accumulate in double.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "quant/blocks.h"

namespace moelite::ref {

// Round to nearest, ties to even, as an int, for |v| < 2^22: adding 1.5 * 2^23
// lands v where the float spacing is 1, so the addition itself rounds (in the
// FPU's default mode, to nearest even) and the subtraction is exact. Cheaper
// than nearbyint on baseline x86-64, which has no rounding instruction.
// (Correct only without -ffast-math, which would fold the two operations.)
inline int round_even(float v) {
    constexpr float kMagic = 12582912.0f;
    return int((v + kMagic) - kMagic);
}

// True when any of x[0..n) is NaN or infinite.
inline bool any_non_finite(const float* x, int n) {
    bool bad = false;
    for (int i = 0; i < n; ++i) bad |= !std::isfinite(x[i]);
    return bad;
}

// f16 bit pattern of the quiet NaN that marks a poisoned block.
inline constexpr uint16_t kF16PoisonNaN = 0x7e00;

inline int64_t block_count(int64_t n, int64_t block_size) {
    MOELITE_ASSERT(n >= 0 && n % block_size == 0);
    return n / block_size;
}

// ---- plain floats (ref_float.cpp) ----
void to_float_f32(const void* src, float* dst, int64_t n);
void from_float_f32(const float* src, void* dst, int64_t n);
void vec_dot_f32(int64_t n, float* s, const void* x, const void* y);
void to_float_f16(const void* src, float* dst, int64_t n);
void from_float_f16(const float* src, void* dst, int64_t n);
void vec_dot_f16(int64_t n, float* s, const void* x, const void* y);
void to_float_bf16(const void* src, float* dst, int64_t n);
void from_float_bf16(const float* src, void* dst, int64_t n);
void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y);

// ---- 32-element formats (ref_legacy.cpp) ----
void to_float_q4_0(const void* src, float* dst, int64_t n);
void from_float_q4_0(const float* src, void* dst, int64_t n);
void vec_dot_q4_0_q8_0(int64_t n, float* s, const void* x, const void* y);
void to_float_q4_1(const void* src, float* dst, int64_t n);
void from_float_q4_1(const float* src, void* dst, int64_t n);
void vec_dot_q4_1_q8_1(int64_t n, float* s, const void* x, const void* y);
void to_float_q5_0(const void* src, float* dst, int64_t n);
void from_float_q5_0(const float* src, void* dst, int64_t n);
void vec_dot_q5_0_q8_0(int64_t n, float* s, const void* x, const void* y);
void to_float_q5_1(const void* src, float* dst, int64_t n);
void from_float_q5_1(const float* src, void* dst, int64_t n);
void vec_dot_q5_1_q8_1(int64_t n, float* s, const void* x, const void* y);
void to_float_q8_0(const void* src, float* dst, int64_t n);
void from_float_q8_0(const float* src, void* dst, int64_t n);
void vec_dot_q8_0_q8_0(int64_t n, float* s, const void* x, const void* y);
void to_float_q8_1(const void* src, float* dst, int64_t n);
void from_float_q8_1(const float* src, void* dst, int64_t n);
void vec_dot_q8_1_q8_1(int64_t n, float* s, const void* x, const void* y);

// ---- K-quants: layouts, to_float, vec_dot, Q8_K (ref_kquants.cpp) ----
void to_float_q2_k(const void* src, float* dst, int64_t n);
void vec_dot_q2_k_q8_k(int64_t n, float* s, const void* x, const void* y);
void to_float_q3_k(const void* src, float* dst, int64_t n);
void vec_dot_q3_k_q8_k(int64_t n, float* s, const void* x, const void* y);
void to_float_q4_k(const void* src, float* dst, int64_t n);
void vec_dot_q4_k_q8_k(int64_t n, float* s, const void* x, const void* y);
void to_float_q5_k(const void* src, float* dst, int64_t n);
void vec_dot_q5_k_q8_k(int64_t n, float* s, const void* x, const void* y);
void to_float_q6_k(const void* src, float* dst, int64_t n);
void vec_dot_q6_k_q8_k(int64_t n, float* s, const void* x, const void* y);
void to_float_q8_k(const void* src, float* dst, int64_t n);
void from_float_q8_k(const float* src, void* dst, int64_t n);
void vec_dot_q8_k_q8_k(int64_t n, float* s, const void* x, const void* y);

// ---- K-quant quantizers (ref_kquants_search.cpp) ----
void from_float_q2_k(const float* src, void* dst, int64_t n);
void from_float_q3_k(const float* src, void* dst, int64_t n);
void from_float_q4_k(const float* src, void* dst, int64_t n);
void from_float_q5_k(const float* src, void* dst, int64_t n);
void from_float_q6_k(const float* src, void* dst, int64_t n);

// Packed sub-block scale helpers, shared by the K-quant files.
//
// Q4_K / Q5_K: eight 6-bit scales and eight 6-bit mins in 12 bytes. Bytes
// 0..3 hold scales 0..3 in their low 6 bits, bytes 4..7 mins 0..3; scales and
// mins 4..7 keep their low 4 bits in bytes 8..11 (scale low nibble, min high
// nibble) and their top 2 bits in the spare top bits of bytes 0..3 (scales)
// and 4..7 (mins).
inline void k4_get_scale_min(const uint8_t* packed, int j, int* scale, int* min) {
    if (j < 4) {
        *scale = packed[j] & 63;
        *min = packed[j + 4] & 63;
    } else {
        *scale = (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4);
        *min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
    }
}
void k4_pack_scales_mins(const int* scales, const int* mins, uint8_t* packed);  // each value in 0..63

// Q3_K: sixteen 6-bit scales stored with a +32 bias in 12 bytes: the low 4
// bits of scale j in byte j % 8 (j < 8: low nibble, else high nibble), the top
// 2 bits in byte 8 + j % 4 at bit 2 * (j / 4). Returns the signed scale.
inline int q3k_get_scale(const uint8_t* packed, int j) {
    const int low = j < 8 ? (packed[j] & 0x0f) : (packed[j - 8] >> 4);
    const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (low | (high << 4)) - 32;
}
void q3k_pack_scales(const int* scales, uint8_t* packed);  // each value in -32..31

}  // namespace moelite::ref
