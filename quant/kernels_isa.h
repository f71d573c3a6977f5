// Internal: the registration function of each per-ISA translation unit
// (quant/kernels_<isa>.cpp), called by quant/kernels.cpp to assemble the
// tables of quant/kernels.h.
//
// This header is included by code built with wide instruction-set flags, so it
// holds plain declarations only: no inline function, no template, nothing the
// linker could merge with baseline code. For the same reason the functions take
// the two arrays of a KernelTable rather than the struct (quant/kernels.h pulls
// in <vector>).
//
// Each function overwrites the entries its ISA implements and leaves the others
// alone; entries are indexed by uint32_t(DType). A registration function may
// itself contain that ISA's instructions (the compiler is free to use them to
// store pointers), so it is called only once the CPU is known to support it.
#pragma once

#include "quant/gemm.h"
#include "quant/quant.h"

namespace moelite {

void fill_kernels_avx2(VecDotFn* vec_dot, FromFloatFn* quantize_row);
// Row dequantizers and float row kernels, from quant/kernels_avx2.cpp.
void fill_float_rows_avx2(ToFloatFn* to_float, ScaleAddFn* scale_add, SwigluFn* swiglu);
void fill_kernels_avx512(VecDotFn* vec_dot, FromFloatFn* quantize_row);
void fill_kernels_avx512vnni(VecDotFn* vec_dot, FromFloatFn* quantize_row);
// Tile kernels (quant/gemm.h), from quant/gemm_avx2.cpp.
void fill_gemm_avx2(GemmFn* gemm);
// Tile kernels over repacked weights and repacking's byte shuffle
// (quant/repack.h), from quant/gemm_repacked_avx2.cpp.
void fill_gemm_repacked_avx2(GemmFn* gemm_repacked, RepackChunksFn* repack_chunks);
// Row dequantizers of the quantized types, from quant/dequant_avx2.cpp.
void fill_dequant_avx2(ToFloatFn* to_float);
// Blocked attention's kernels, from quant/attn_avx2.cpp.
void fill_attn_avx2(AttnScoresFn* scores, Transpose32Fn* transpose, AttnAccumulateFn* accumulate, ExpSubFn* exp_sub);
// The bf16 tile product (quant/gemm.h), from quant/gemm_amx.cpp.
void fill_gemm_amx(Bf16GemmFn* gemm_bf16);

}  // namespace moelite
