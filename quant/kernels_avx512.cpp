// AVX-512 (F, BW, VL, DQ) kernels: the translation unit built with
// that ISA's flags (CMakeLists.txt, by file name). The kernels themselves are
// in quant/kernels_avx512_body.h, shared with the other AVX-512 unit; see
// there, and kernels_avx2.cpp for the rules such a file follows.
// GCC 12's AVX-512 headers pass an undefined vector (_mm512_undefined_*) as
// the ignored merge source of unmasked intrinsics, and warn about it once
// inlined; the warnings say nothing about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/kernels_isa.h"

#define MOELITE_AVX512_VNNI 0
#include "quant/kernels_avx512_body.h"

namespace moelite {

void fill_kernels_avx512(VecDotFn* vec_dot, FromFloatFn* quantize_row) { register_avx512_kernels(vec_dot, quantize_row); }

}  // namespace moelite
