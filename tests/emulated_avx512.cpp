// Test-only: the AVX-512 (F, BW, VL, DQ) kernels of quant/kernels_avx512_body.h over the
// emulated intrinsics of tests/emulated_avx512.h (see tests/emulated.h).
#include "tests/emulated_avx512.h"

#define MOELITE_AVX512_VNNI 0
#include "quant/kernels_avx512_body.h"

namespace moelite::test {

void fill_kernels_avx512_emulated(VecDotFn* vec_dot, FromFloatFn* quantize_row) {
    register_avx512_kernels(vec_dot, quantize_row);
}

}  // namespace moelite::test
