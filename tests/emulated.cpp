// The emulated kernel tables of tests/emulated.h.
#include "tests/emulated.h"

namespace moelite::test {
namespace {

#ifdef MOELITE_HAVE_SIMDE
WideIsaFills emulated_fills() {
    return {fill_kernels_avx512_emulated, fill_kernels_avx512vnni_emulated, fill_gemm_amx_emulated};
}
#else
void no_kernels(VecDotFn*, FromFloatFn*) {}

WideIsaFills emulated_fills() {
    return {no_kernels, no_kernels, fill_gemm_amx_emulated};
}
#endif

}  // namespace

const std::vector<EmulatedTable>& emulated_tables() {
    static const std::vector<EmulatedTable> tables = [] {
        std::vector<EmulatedTable> out;
        const Isa best = isa_machine_best();
        if (best < Isa::Avx2) return out;
        for (Isa isa : {Isa::Avx512, Isa::Avx512Vnni, Isa::Amx}) {
#ifndef MOELITE_HAVE_SIMDE
            if (isa != Isa::Amx) continue;
#endif
            if (isa > best)
                out.push_back({std::string(isa_name(isa)) + " (emulated)", assemble_wide_table(isa, emulated_fills())});
        }
        return out;
    }();
    return tables;
}

std::string emulation_gaps() {
    std::string gaps;
    if (isa_machine_best() < Isa::Avx2) gaps = "no emulated ISA: the emulations need AVX2";
#ifndef MOELITE_HAVE_SIMDE
    else
        gaps = "AVX-512 kernels not emulated: SIMDe (libsimde-dev) was not found at configure time";
#endif
    return gaps;
}

}  // namespace moelite::test
