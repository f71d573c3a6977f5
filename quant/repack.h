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
// Layout (quant/repack.cpp has the table). Each block of a row splits into
// its fp16 fields (Q4_0, Q5_0, Q8_0, Q6_K: d; Q4_K: d, dmin) and the rest of
// its bytes, cut in chunks of 4. In a group of 8 rows, block b's chunk c is
// 32 bytes (one load): the 4 bytes of chunk c of each row, in row order; its
// field f is 16 bytes: the field of each row. Group block b (8 blocks' bytes)
// holds block b's fields, then its chunks. (Chunks then straddle cache lines
// where a block's size is not a multiple of 32 bytes; keeping them aligned
// by putting all the fields of a group after its chunks made decode streaming
// slower: Q4_0 1.5B 24 -> 19 t/s.)
//
// Chunks by type: Q4_0: 4 chunks of qs (chunk c's low nibbles are elements
// 4c..4c+3 of each row, its high nibbles 16+4c..16+4c+3); Q5_0: the qh word,
// then qs as Q4_0; Q8_0: 8 chunks of qs (elements 4c..4c+3); Q4_K: 3 chunks
// of the packed scales, then 32 of qs; Q6_K: for each half and each 4 of
// its 32 elements l, the ql chunks of l and l + 32 and the qh chunk of l,
// then 4 of the int8 scales (so its kernel reads them in order).
//
// Group g starts at byte g * 8 * row_bytes, so a row slice starting at a
// multiple of 8 rows is addressed exactly as in the plain layout.
//
// Where it is used: the CPU backend repacks Q4_0 and Q5_0 weights at load
// (CpuBackend::adopt_weight) and the other types 64 rows at a time in
// prefill (backends/cpu/ops_matmul.cpp).
//
// Activations for a repacked weight: rows of the weight's vec_dot_type
// followed by what the kernels need beyond it, made by repacked_x_finish()
// after the usual conversion. Q4_0, Q5_0 and Q8_0 (Q8_0 activations): at
// the next multiple of 4 bytes after the blocks, each block's scale as a
// float (so a kernel broadcasts it from memory instead of converting it);
// then, for Q4_0 and Q5_0, whose quants go in unsigned, the weights' offset
// (8 or 16) times each block's quant sum as int32, which comes off once
// per block.
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
// must hold. `chunks` moves the chunks: a kernel table's repack_chunks
// (quant/kernels.h), or repack_chunks_ref.
void repack_rows(DType type, int64_t k, int64_t m, const void* src, size_t src_stride, void* dst,
                 RepackChunksFn chunks);
// The scalar RepackChunksFn.
void repack_chunks_ref(const uint8_t* const* rows, int n_chunks, uint8_t* group, const uint16_t* chunk_to);
// The inverse: the plain rows back (tests, and mul_mat's AMX path, which
// dequantizes weights from the file's layout).
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
