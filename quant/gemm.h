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

}  // namespace moelite
