// QuantTraits: the one table of per-type compute functions, keyed by DType
// (core/dtype.h holds the sizes). Every entry here is the scalar reference:
// simple, obviously right, and what every faster kernel is tested against.
// The per-ISA kernels (quant/kernels.h) are chosen at run time and fall back
// to these where they have nothing faster.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace moelite {

using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// *s = sum over n elements of x[i] * y[i]; x is of the weight type, y of its
// vec_dot_type. n is a multiple of both types' block sizes.
using VecDotFn = void (*)(int64_t n, float* s, const void* x, const void* y);
// y[i] = a * y[i] + b * x[i] for i < n (attention's running sums).
using ScaleAddFn = void (*)(int64_t n, float* y, float a, const float* x, float b);
// Blocked attention (flash_attn over blocks of queries and keys); strides
// count floats. Scores: s[r][j] = sum over i < d of q[r][i] * kt[i][j] for
// r < rows, j < keys (kt holds the keys transposed, one row per dimension).
using AttnScoresFn = void (*)(int64_t rows, int64_t keys, int64_t d, const float* q, size_t q_stride, const float* kt,
                              size_t kt_stride, float* s, size_t s_stride);
// dst[i][j] = rows[j][i] for i < d, j < n over 4-byte elements, strides
// counting elements: bit copies (floats of attention's key blocks, bf16 pairs
// of the AMX weight panels).
using Transpose32Fn = void (*)(int64_t d, int64_t n, const void* rows, size_t row_stride, void* dst,
                               size_t dst_stride);
// acc[r][c] += sum over j < keys of p[r][j] * v[j][c] for r < rows, c < dv.
using AttnAccumulateFn = void (*)(int64_t rows, int64_t keys, int64_t dv, const float* p, size_t p_stride,
                                  const float* v, size_t v_stride, float* acc, size_t acc_stride);
// x[i] = exp(x[i] - m) for i < n, where x[i] <= m or x[i] = -inf (giving 0);
// returns the sum of the new x.
using ExpSubFn = float (*)(int64_t n, float* x, float m);
// out[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i] for i < n (the
// gated feed-forward's activation).
using SwigluFn = void (*)(int64_t n, const float* g, const float* u, float* out);

// Non-finite input. from_float never has undefined behaviour: a block (of
// the type's block size; the whole 256-element super-block for K-quants) that
// holds a NaN or an infinity is stored "poisoned": its quants are 0 and every
// float scale field (d, and m / s / dmin where the format has them) is NaN, so
// the whole block reads back as NaN and any dot product with it is NaN, as an
// f32 dot product with that row would be. Other blocks are unaffected. ggml
// leaves this case undefined (its reference converts NaN to an integer) and
// its row validation rejects non-finite scales. F32/F16/BF16 convert element
// by element: NaN stays NaN, infinities stay, finite values past the f16 range
// become infinities (as ggml). Finite blocks whose scale overflows f16 (|x|
// past ~5e5 for Q4_0, ~8e6 for Q8_0) store an infinite scale, as ggml does.
struct QuantTraits {
    DType type;
    ToFloatFn to_float;      // dequantize n elements (n a multiple of the block size)
    FromFloatFn from_float;  // quantize n elements, round-to-nearest reference
    DType vec_dot_type;      // what activations are converted to for vec_dot
    VecDotFn vec_dot;        // reference dot product
};

// nullptr for types we cannot compute on (they may still be listed and copied).
const QuantTraits* quant_traits(DType type);

// The scalar reference of ScaleAddFn (no fused multiply-add).
void scale_add_f32(int64_t n, float* y, float a, const float* x, float b);
// The scalar references of the blocked-attention kernels (double sums, std::exp).
void attn_scores_f32(int64_t rows, int64_t keys, int64_t d, const float* q, size_t q_stride, const float* kt,
                     size_t kt_stride, float* s, size_t s_stride);
// The scalar reference of Transpose32Fn.
void transpose32_ref(int64_t d, int64_t n, const void* rows, size_t row_stride, void* dst, size_t dst_stride);
void attn_accumulate_f32(int64_t rows, int64_t keys, int64_t dv, const float* p, size_t p_stride, const float* v,
                         size_t v_stride, float* acc, size_t acc_stride);
float exp_sub_f32(int64_t n, float* x, float m);
// The scalar reference of SwigluFn (std::exp).
void swiglu_f32(int64_t n, const float* g, const float* u, float* out);

}  // namespace moelite
