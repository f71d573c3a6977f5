// Block layouts of the quantized types, bit-compatible with ggml's (and so
// with every GGUF file). A block holds block_size consecutive elements of one
// row; f16 fields are raw IEEE binary16 bits (core/fp16.h converts).
//
// Plain structs only: this header is included by per-ISA translation units.
#pragma once

#include <cstdint>

namespace moelite {

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK_K = 256;        // super-block of the K-quants
inline constexpr int kKScaleSize = 12;   // packed 6-bit scales and mins of Q4_K / Q5_K

using fp16_bits = uint16_t;

// x = d * (q - 8), q in 0..15; element j in the low nibble of qs[j], element
// j + 16 in the high nibble.
struct BlockQ4_0 {
    fp16_bits d;
    uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// x = d * q + m, q in 0..15; nibble order as Q4_0.
struct BlockQ4_1 {
    fp16_bits d;
    fp16_bits m;
    uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// x = d * (q - 16), q in 0..31: low 4 bits as Q4_0, bit 4 of element j in bit j of qh.
struct BlockQ5_0 {
    fp16_bits d;
    uint8_t qh[4];
    uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// x = d * q + m, q in 0..31; bits as Q5_0.
struct BlockQ5_1 {
    fp16_bits d;
    fp16_bits m;
    uint8_t qh[4];
    uint8_t qs[kQK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// x = d * q, q in -127..127.
struct BlockQ8_0 {
    fp16_bits d;
    int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// As Q8_0 plus s = d * sum(qs): the activation type paired with Q4_1 / Q5_1.
struct BlockQ8_1 {
    fp16_bits d;
    fp16_bits s;
    int8_t qs[kQK8_1];
};
static_assert(sizeof(BlockQ8_1) == 36);

// 16 sub-blocks of 16: x = d * sc * q - dmin * m, 4-bit sc and m packed in scales.
struct BlockQ2_K {
    uint8_t scales[kQK_K / 16];
    uint8_t qs[kQK_K / 4];
    fp16_bits d;
    fp16_bits dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// 16 sub-blocks of 16, 3-bit q (2 low bits in qs, high bit in hmask), 6-bit scales.
struct BlockQ3_K {
    uint8_t hmask[kQK_K / 8];
    uint8_t qs[kQK_K / 4];
    uint8_t scales[12];
    fp16_bits d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// 8 sub-blocks of 32: x = d * sc * q - dmin * m, 6-bit sc and m packed in scales.
struct BlockQ4_K {
    fp16_bits d;
    fp16_bits dmin;
    uint8_t scales[kKScaleSize];
    uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// As Q4_K with a fifth bit per element in qh.
struct BlockQ5_K {
    fp16_bits d;
    fp16_bits dmin;
    uint8_t scales[kKScaleSize];
    uint8_t qh[kQK_K / 8];
    uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// 16 sub-blocks of 16: x = d * sc * (q - 32), q 6 bits (4 in ql, 2 in qh), sc int8.
struct BlockQ6_K {
    uint8_t ql[kQK_K / 2];
    uint8_t qh[kQK_K / 4];
    int8_t scales[kQK_K / 16];
    fp16_bits d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Activation type of the K-quants: f32 scale, and the sums of each group of 16
// quants so the min terms of Q4_K/Q5_K need no per-element work.
struct BlockQ8_K {
    float d;
    int8_t qs[kQK_K];
    int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace moelite
