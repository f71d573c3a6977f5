// Test-only: the kernels of the ISAs above AVX2 built over software
// emulations of their instructions, so the tests run them on machines that
// lack those ISAs. The AVX-512 and AVX-512 VNNI kernels
// (quant/kernels_avx512_body.h) use SIMDe's intrinsics plus
// tests/emulated_avx512.h; the AMX kernel (quant/gemm_amx.cpp) an emulated
// tile unit (tests/emulated_amx_tiles.cpp). The emulations run on AVX2.
//
// They check the kernels' logic (layouts, lanes, masks, tile shapes) against
// Intel's definitions as written down here, not the silicon: the same tests on
// a CPU with those ISAs remain the final word.
#pragma once

#include <string>
#include <vector>

#include "quant/kernels.h"

namespace moelite::test {

// The registration functions of the emulated builds. The AVX-512 ones exist
// only where SIMDe was found (MOELITE_HAVE_SIMDE).
void fill_kernels_avx512_emulated(VecDotFn* vec_dot, FromFloatFn* quantize_row);
void fill_kernels_avx512vnni_emulated(VecDotFn* vec_dot, FromFloatFn* quantize_row);
void fill_gemm_amx_emulated(Bf16GemmFn* gemm_bf16);

// Uses of the emulated tile unit that the hardware would refuse (a bad
// configuration, unconfigured tiles, shapes that do not chain) since the
// start of the process: empty if none, else their count and the first one.
std::string amx_emulator_faults();

struct EmulatedTable {
    std::string label;  // e.g. "avx512vnni (emulated)"
    KernelTable table;
};

// The tables of the ISAs above this machine's best, assembled as the real
// ones (assemble_wide_table) from the emulated kernels: AVX-512 and VNNI
// where SIMDe was found, AMX always (over AVX2's entries without SIMDe).
// Empty on a machine without AVX2. Built once.
const std::vector<EmulatedTable>& emulated_tables();

// A note for the test log naming what could not be emulated here, or empty.
std::string emulation_gaps();

}  // namespace moelite::test
