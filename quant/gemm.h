// Tile kernels of mul_mat: one call computes a block of outputs, several
// weight rows times several converted activation rows, so that one pass over
// the activations feeds several weight rows (decode) and each weight block,
// once unpacked, meets several activation rows (prefill).
//
// Conventions: `w` points at the first of m weight rows of one type, w_stride
// bytes apart (ne[0] contiguous); x_rows[j] at activation row j (j < n) of the
// weight type's vec_dot_type; each holds k elements, k a multiple of both
// block sizes. out_rows[j][i] receives dot(weight row i, x_rows[j]): the
// result vec_dot would give, up to the order of float additions.
//
// Plain declarations only: included by per-ISA translation units (see
// quant/kernels_isa.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace moelite {

using GemmFn = void (*)(int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride, const void* const* x_rows,
                        float* const* out_rows);

// The byte shuffle of repacking (quant/repack.h), one block of a group of 8
// rows: rows[r] points at row r's run of n_chunks chunks of 4 bytes (at
// least 4, as in every layout); chunk j of row r goes to group + chunk_to[j] + 4 r.
using RepackChunksFn = void (*)(const uint8_t* const* rows, int n_chunks, uint8_t* group, const uint16_t* chunk_to);

// ---- bf16 tile products (AMX) ----------------------------------------------
//
// Prefill on a CPU with AMX dequantizes a block of weight rows to bf16 and
// multiplies it with the activation rows, rounded to bf16 too, on the tile
// unit (TDPBF16PS: bf16 pairs, float sums). Both operands are padded to
// k_pad elements, a multiple of kBf16Chunk, with zeros.
//
// The activations are the tiles' A operand, plain rows: `x` holds bf16
// activation rows x_stride bytes apart, k_pad elements each. The tile sums
// then come out as activation rows of weight columns, the layout of the
// output, and are stored into it directly.
//
// The weights are the B operand, in panels of kBf16PanelRows rows. In panel
// p, chunk c (k elements [32c, 32c + 32)) is kBf16ChunkBytes bytes at
// w + (p * k_pad / 32 + c) * kBf16ChunkBytes: 16 lines of 64 bytes, line r
// holding, for each panel row i < 16, that row's elements 32c + 2r and
// 32c + 2r + 1 (4 bytes at 4i). Rows of the last panel past m may hold
// anything: they only feed outputs that are not written.
//
// Bf16GemmFn: out[j * out_stride bytes][i] = sum over k of w(i, k) * x[j][k]
// for i < m <= kBf16MaxRows and j < n, where w(i, k) is weight row i's
// element k. Rows of `x` up to n rounded up to 16 are read (those past n
// only feed outputs that are not written). Sums are float, in the tile
// unit's order; bf16 denormals count as zero, as the tile unit has it.
inline constexpr int64_t kBf16Chunk = 32;
inline constexpr int64_t kBf16PanelRows = 16;
inline constexpr int64_t kBf16MaxRows = 32;
inline constexpr size_t kBf16ChunkBytes = 1024;

using Bf16GemmFn = void (*)(int64_t k_pad, int64_t m, int64_t n, const void* w, const uint16_t* x, size_t x_stride,
                            float* out, size_t out_stride);

// The scalar reference of Bf16GemmFn (double sums, denormals kept), for tests.
void gemm_bf16_ref(int64_t k_pad, int64_t m, int64_t n, const void* w, const uint16_t* x, size_t x_stride, float* out,
                   size_t out_stride);
// Whether `gemm` gives gemm_bf16_ref's floats exactly on small integers
// (whose float sums are exact in any order), over ragged shapes: the check a
// kernel that has never run on this CPU must pass before it is used.
bool gemm_bf16_self_check(Bf16GemmFn gemm);
// Writes bf16 row `row` (k elements, then zeros up to k_pad) as row i of the
// panel at `panel` (k_pad * kBf16PanelRows * 2 bytes).
void bf16_panel_put_row(const uint16_t* row, int64_t k, int64_t k_pad, int64_t i, void* panel);

}  // namespace moelite
