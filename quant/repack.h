// Interleaved ("repacked") weight layouts for the CPU backend's GEMM.
//
// A repacked weight keeps its type and its size in bytes, but groups of
// kRepackRows consecutive rows are rewritten so that one 256-bit load holds
// the same stretch of all rows of the group: an integer dot product then
// computes kRepackRows outputs at once, one per 32-bit lane, and the block
// scales of the group scale them with one vector multiply. This is a property
// of a CPU buffer (backends/cpu), never of a file: the GGUF layout stays
// ggml's, and a repacked tensor is only ever read by mul_mat (it carries
// kTensorRepacked).
//
// Layout (quant/repack.cpp has the table): block b of a group of 8 rows
// becomes one group block of 8 blocks' bytes: first the fp16 fields (Q4_0,
// Q8_0: d; Q4_K: d, dmin), each gathered for the 8 rows in row order, then
// the rest of the block's bytes in chunks of 4, each chunk gathered for the 8
// rows (32 bytes: one load). For Q4_0 chunk c's low nibbles are elements
// 4c..4c+3 of each row, its high nibbles 16+4c..16+4c+3; Q5_0 has its qh
// words in chunk 0, then its qs as Q4_0; Q8_0's chunk c is elements
// 4c..4c+3; Q4_K has 3 chunks of its packed scales, then 32 of qs.
// Group g starts at byte g * 8 * row_bytes, so a row slice starting at a
// multiple of 8 rows is addressed exactly as in the plain layout.
//
// Activations for a repacked weight: rows of the weight's vec_dot_type
// followed by what the kernels need beyond it (Q4_0, Q5_0: the int32 sum of each
// Q8_0 block's quants at the next multiple of 4 bytes after the blocks, so the
// weights' offset 8 or 16 comes off once per block), made by
// repacked_x_finish() after the usual conversion.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "quant/gemm.h"

namespace moelite {

inline constexpr int64_t kRepackRows = 8;

// Whether a weight of `type` with m rows of k elements has a repacked layout
// (the type has one, m is a multiple of kRepackRows).
bool repack_supported(DType type, int64_t k, int64_t m);

// Writes m rows of k elements (src rows src_stride bytes apart) into dst in
// the repacked layout: m * row_bytes bytes, rows contiguous. repack_supported
// must hold.
void repack_rows(DType type, int64_t k, int64_t m, const void* src, size_t src_stride, void* dst);
// The inverse: the plain rows back (for tests and tools).
void unpack_rows(DType type, int64_t k, int64_t m, const void* src, void* dst);

// Bytes of one converted activation row for a repacked weight of `type`.
size_t repacked_x_row_bytes(DType type, int64_t k);
// Appends the extras to a row already converted to the vec_dot_type.
void repacked_x_finish(DType type, void* row, int64_t k);

// Scalar reference of the repacked GEMM (quant/gemm.h conventions; w points at
// the first row of a group, w_stride is the plain row size, m a multiple of
// kRepackRows, x_rows made by repacked_x_finish). Gives the plain
// reference vec_dot's results up to the order of float sums. Null for types
// without a repacked layout.
GemmFn gemm_repacked_ref(DType type);

}  // namespace moelite
