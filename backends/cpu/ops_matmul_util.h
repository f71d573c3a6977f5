// Internal to the mat-mul ops of the CPU backend (ops_matmul.cpp: mul_mat,
// ops_matmul_id.cpp: mul_mat_id): the work-unit sizes, activation-row
// conversion and the steps of the AMX path they share. See ops_matmul.cpp for
// the convention (w [K, M, ...] one output per row, x [K, N, ...] one
// activation per row).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "backends/cpu/ops.h"
#include "core/tensor.h"
#include "quant/kernels.h"

namespace moelite::cpu::matmul {

// Plain tile units: up to kRowsPerUnit weight rows by kColsPerUnit activation rows.
inline constexpr int64_t kRowsPerUnit = 16;
inline constexpr int64_t kColsPerUnit = 64;
// Weight rows are repacked on the fly (quant/repack.h) for at least this many
// activation rows (mul_mat_id: of the unit's expert).
inline constexpr int32_t kRepackMinTokens = 4;
// With the AMX table, quantized weights times at least this many activation
// rows go through the bf16 tile product (mul_mat: of the op; mul_mat_id: of
// the expert, and the op has at least kAmxMinCols tokens).
inline constexpr int64_t kAmxMinCols = 32;
inline constexpr int64_t kAmxMinExpertRows = 16;

// Stride of one converted activation row in scratch.
size_t converted_row_stride(DType vdt, int64_t k);
// Stride of a converted activation row for weight w, with or without the
// extras of its repacked kernels (quant/repack.h).
size_t x_stride(const Tensor& w, bool extras);
// Whether x rows can be used as they are (F32 weights' vec_dot_type is F32).
bool x_used_in_place(const Tensor& x, DType vdt);
// Activation row (i1, i2, i3) of x as contiguous floats: in place, or gathered
// into `gather` (K floats) when x's elements are strided.
const float* x_row_floats(const Tensor& x, int64_t i1, int64_t i2, int64_t i3, float* gather);
// Converts the x rows [r0, r1) (flattened over ne[1..3]) into dst rows of
// `stride` bytes. With `extras_for` set, each row gets the extras of that
// weight type's repacked kernels (quant/repack.h).
void convert_rows(const Tensor& x, int64_t r0, int64_t r1, FromFloatFn convert, char* dst, size_t stride, float* gather,
                  std::optional<DType> extras_for);

// Activation row (i1, i2, i3) as the dot kernel wants it.
inline const void* x_row(const Tensor& x, bool in_place, const char* conv, size_t stride, int64_t i1, int64_t i2,
                         int64_t i3) {
    if (in_place) return static_cast<const char*>(x.data) + i1 * x.nb[1] + i2 * x.nb[2] + i3 * x.nb[3];
    return conv + size_t(i1 + x.ne[1] * (i2 + x.ne[2] * i3)) * stride;
}

// ---- the AMX path (quant/gemm.h, bf16 tiles) --------------------------------

// Whether the table multiplies weights of `type` on bf16 tiles: it has the
// tile product (AMX), and the type is quantized (F32/F16 weights would lose
// precision to bf16; a quantized value loses 2^-9 of itself, far below its
// own rounding) with a dequantizer.
bool amx_weight_type(const KernelTable& kt, DType type);
// Row length padded to whole chunks of the tile layout.
int64_t bf16_k_pad(int64_t k);
// Bytes of one panel of kBf16PanelRows weight rows, and of as many bf16
// activation rows of k_pad elements.
size_t bf16_panel_bytes(int64_t k);

// Weight rows [first, first + rows) of w's matrix at `base` (rows w.nb[1]
// apart), rows <= kBf16MaxRows, as bf16 into the panels at `dst` (two of
// bf16_panel_bytes(K)), zeros past K: up to 16 rows at a time as plain bf16
// rows into `stage` (bf16_panel_bytes(K)), then their pairs transposed into
// the panel by the table's transpose32. `floats` holds K floats; `group`,
// for a weight repacked at load (kTensorRepacked), kRepackRows rows of w,
// and `first` then is a multiple of kRepackRows.
void weight_rows_to_panels(const KernelTable& kt, const Tensor& w, const char* base, int64_t first, int64_t rows,
                           float* floats, uint16_t* stage, char* group, char* dst);
// An activation row, already rounded to vec_dot_type `vdt` (`converted`), as
// a bf16 row of k_pad elements at `dst`, zeros past k: back to floats, then
// to bf16, as every path rounds it. `floats` holds k floats; null
// `converted` puts zeros.
void activation_to_bf16(const KernelTable& kt, DType vdt, const void* converted, int64_t k, float* floats,
                        uint16_t* dst);

}  // namespace moelite::cpu::matmul
