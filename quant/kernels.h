// Per-ISA kernels, chosen at run time.
//
// Each instruction set has its own translation unit (quant/kernels_avx2.cpp,
// quant/kernels_avx512.cpp, ...) built with that ISA's flags and nothing else
// (see CMakeLists.txt); the rest of the library is baseline x86-64 and reaches
// them only through the tables below, after checking the CPU (CPUID) and the
// OS (XGETBV; arch_prctl for AMX) support them. MOELITE_ISA=scalar|avx2|
// avx512|avx512vnni|amx caps the choice (never raises it).
//
// A table entry an ISA does not implement is taken from the next lower ISA,
// down to the scalar reference of quant/quant.h, so every entry is callable.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "quant/gemm.h"
#include "quant/quant.h"

namespace moelite {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Vnni = 3, Amx = 4 };

const char* isa_name(Isa isa);

struct CpuFeatures {
    bool avx = false, avx2 = false, fma = false, f16c = false, bmi2 = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512vnni = false, avx512bf16 = false;
    bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
    bool os_avx = false;     // XCR0 enables YMM state
    bool os_avx512 = false;  // XCR0 enables opmask/ZMM state
    bool os_amx = false;     // XCR0 + arch_prctl(ARCH_REQ_XCOMP_PERM) granted tile data
};

const CpuFeatures& cpu_features();
Isa isa_machine_best();            // best the CPU and OS support
Isa isa_active();                  // isa_machine_best() capped by MOELITE_ISA
std::vector<Isa> isa_supported();  // every ISA usable here, lowest first

// "scalar", "avx2", "avx512", "avx512vnni", "amx" (any case); nullopt otherwise.
std::optional<Isa> isa_from_name(std::string_view name);
// The ISA that MOELITE_ISA=`request` selects on a machine whose best is
// `machine_best`. Null, empty or "auto" selects machine_best. A known name caps
// the choice (the ISAs are ordered, each a superset of the one below); one
// above machine_best, or an unknown name, logs a warning and gives machine_best.
// isa_active() is isa_parse_cap(getenv("MOELITE_ISA"), isa_machine_best()).
Isa isa_parse_cap(const char* request, Isa machine_best);

struct KernelTable {
    Isa isa;
    // Per weight type: dot product of a weight row with an activation row of
    // quant_traits(type)->vec_dot_type. Null only for types we cannot compute on.
    VecDotFn vec_dot[kDTypeIdLimit];
    // Per activation type (F32, F16, BF16, Q8_0, Q8_1, Q8_K): quantize one row.
    FromFloatFn quantize_row[kDTypeIdLimit];
    // Per type with a reference to_float: dequantize one row (KV cache rows,
    // embeddings, weights for sgemm).
    ToFloatFn to_float[kDTypeIdLimit];
    // y = a * y + b * x over float rows.
    ScaleAddFn scale_add;
    // Blocked attention's kernels (quant/quant.h).
    AttnScoresFn attn_scores;
    Transpose32Fn transpose32;
    AttnAccumulateFn attn_accumulate;
    ExpSubFn exp_sub;
    // The gated feed-forward's activation (quant/quant.h).
    SwigluFn swiglu;
    // Per weight type: tile kernel (quant/gemm.h), null where the ISA has none;
    // gemm_tiles() then falls back to vec_dot.
    GemmFn gemm[kDTypeIdLimit];
    // Per weight type: tile kernel over the repacked layout (quant/repack.h);
    // the scalar table has the reference for every type with a layout.
    GemmFn gemm_repacked[kDTypeIdLimit];
    // Repacking's byte shuffle (quant/repack.h).
    RepackChunksFn repack_chunks;
    // The bf16 tile product of quant/gemm.h: the AMX table only, null below.
    Bf16GemmFn gemm_bf16;
};

// The table's kernel over repacked weights of `type` where it has one faster
// than the reference (which unshuffles block by block); null otherwise, and
// then repacking does not pay.
GemmFn fast_repacked_gemm(const KernelTable& kt, DType type);

// The table of `isa`, which must be in isa_supported().
const KernelTable& kernel_table(Isa isa);
// The table of isa_active().
const KernelTable& kernels();

// The registration functions of the ISAs above AVX2 (quant/kernels_isa.h).
struct WideIsaFills {
    void (*avx512)(VecDotFn* vec_dot, FromFloatFn* quantize_row);
    void (*avx512vnni)(VecDotFn* vec_dot, FromFloatFn* quantize_row);
    void (*amx)(Bf16GemmFn* gemm_bf16);
};
// The table of `isa` (AVX-512 or above) assembled as kernel_table() assembles
// it, over this machine's AVX2 table, from the given registration functions.
// The machine needs AVX2, not `isa`: the tests pass emulated builds of those
// kernels (tests/emulated_*.cpp) to run them on any AVX2 machine.
KernelTable assemble_wide_table(Isa isa, const WideIsaFills& fills);

// out_rows[j][i] = dot(weight row i, x_rows[j]) for i < m, j < n, as in
// quant/gemm.h, with the table's tile kernel of `type` where it has one and a
// loop of its vec_dot (or the reference's) otherwise.
void gemm_tiles(const KernelTable& kt, DType type, int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride,
                const void* const* x_rows, float* const* out_rows);

}  // namespace moelite
