// Independent references for the backend op tests: every op of core/graph.h
// computed naively in double precision on host memory, sharing no code with
// any backend's kernels. Quantized data goes through the scalar reference of
// quant/quant.h only (to_float / from_float), never a per-ISA kernel.
//
// Where a backend by design rounds an operand before multiplying (mul_mat
// and flash_attn convert activations / queries to the weight's or key's
// vec_dot_type), the reference applies the same rounding with the reference
// from_float and to_float, then does the arithmetic in double; the test
// tolerances cover only the kernels' own arithmetic.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace moelite::test {

// Row (i1, i2, i3) of t as doubles (quantized rows dequantized by the
// reference to_float; their rows must be contiguous).
std::vector<double> ref_row(const Tensor& t, int64_t i1, int64_t i2, int64_t i3);
// Every element of t, ne[0] fastest.
std::vector<double> ref_values(const Tensor& t);
// x rounded through `type` with the reference from_float then to_float
// (identity for F32); x.size() a multiple of the block size.
std::vector<double> ref_round_trip(DType type, const std::vector<double>& x);

// The result of `node` from its sources (host memory), ne[0] fastest.
std::vector<double> ref_compute(const Tensor& node);

}  // namespace moelite::test
