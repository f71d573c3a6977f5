// Assembly of the per-ISA kernel tables (quant/kernels.h).
//
// The scalar table is quant_traits(): its reference vec_dot for every type and
// its from_float for the activation types. Each higher ISA starts from the
// table below it and overlays the entries its translation unit implements, so
// an entry an ISA lacks falls through to the best lower one. A registration
// function runs only when the CPU supports its ISA (it is built with that
// ISA's flags), so the tables of unsupported ISAs are never built.
//
// A fast kernel is kept only where quant_traits() has the reference it must be
// tested against, and pairs the weight type with the activation type the
// reference declares; anything else is an inconsistency of our own code. Tile
// kernels (gemm) follow the same rules; the scalar table has none, and
// gemm_tiles() loops over vec_dot where a table has none.
#include "quant/kernels.h"

#include <array>

#include "core/error.h"
#include "core/log.h"
#include "quant/kernels_isa.h"
#include "quant/repack.h"

namespace moelite {
namespace {

constexpr DType kActivationTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q8_1, DType::Q8_K};

// The activation type each SIMD dot product is written for (ggml's pairing).
DType simd_vec_dot_type(DType weight) {
    switch (weight) {
        case DType::Q4_0:
        case DType::Q5_0:
        case DType::Q8_0:
            return DType::Q8_0;
        case DType::Q4_1:
        case DType::Q5_1:
            return DType::Q8_1;
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
            return DType::Q8_K;
        case DType::BF16:
            return DType::F32;
        default:
            return weight;  // F32, F16: same type on both sides
    }
}

KernelTable scalar_table() {
    KernelTable t{};
    t.isa = Isa::Scalar;
    t.scale_add = scale_add_f32;
    t.attn_scores = attn_scores_f32;
    t.transpose32 = transpose32_ref;
    t.attn_accumulate = attn_accumulate_f32;
    t.exp_sub = exp_sub_f32;
    t.swiglu = swiglu_f32;
    t.repack_chunks = repack_chunks_ref;
    for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
        const auto type = dtype_from_id(id);
        const QuantTraits* traits = type ? quant_traits(*type) : nullptr;
        t.vec_dot[id] = traits ? traits->vec_dot : nullptr;
        t.quantize_row[id] = nullptr;
        t.to_float[id] = traits ? traits->to_float : nullptr;
        t.gemm[id] = nullptr;
        t.gemm_repacked[id] = type ? gemm_repacked_ref(*type) : nullptr;
    }
    for (DType type : kActivationTypes) {
        const QuantTraits* traits = quant_traits(type);
        t.quantize_row[uint32_t(type)] = traits ? traits->from_float : nullptr;
    }
    return t;
}

// Runs `fill` over a copy of `below` and keeps only the entries that are safe
// to use (see the header comment).
KernelTable overlay(const KernelTable& below, Isa isa, void (*fill)(VecDotFn*, FromFloatFn*),
                    void (*fill_gemm)(GemmFn*) = nullptr,
                    void (*fill_gemm_repacked)(GemmFn*, RepackChunksFn*) = nullptr,
                    void (*fill_float_rows)(ToFloatFn*, ScaleAddFn*, SwigluFn*) = nullptr) {
    KernelTable t = below;
    t.isa = isa;
    if (fill != nullptr) fill(t.vec_dot, t.quantize_row);
    if (fill_float_rows != nullptr) fill_float_rows(t.to_float, &t.scale_add, &t.swiglu);
    if (fill_gemm != nullptr) fill_gemm(t.gemm);
    if (fill_gemm_repacked != nullptr) fill_gemm_repacked(t.gemm_repacked, &t.repack_chunks);
    for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
        const auto type = dtype_from_id(id);
        const QuantTraits* traits = type ? quant_traits(*type) : nullptr;
        if (t.gemm[id] != below.gemm[id]) {
            if (traits == nullptr || traits->vec_dot == nullptr) {
                t.gemm[id] = below.gemm[id];
            } else {
                MOELITE_ASSERT_MSG(traits->vec_dot_type == simd_vec_dot_type(*type),
                                   "tile kernel written for another activation type than the reference's");
            }
        }
        if (t.gemm_repacked[id] != below.gemm_repacked[id] && (type == std::nullopt || !gemm_repacked_ref(*type))) {
            t.gemm_repacked[id] = below.gemm_repacked[id];  // no repacked layout: never called
        }
        if (t.vec_dot[id] != below.vec_dot[id]) {
            if (traits == nullptr || traits->vec_dot == nullptr) {
                t.vec_dot[id] = below.vec_dot[id];  // no reference yet: not tested, not used
            } else {
                MOELITE_ASSERT_MSG(traits->vec_dot_type == simd_vec_dot_type(*type),
                                   "SIMD dot product written for another activation type than the reference's");
            }
        }
        if (t.to_float[id] != below.to_float[id] && (traits == nullptr || traits->to_float == nullptr)) {
            t.to_float[id] = below.to_float[id];  // no reference: not tested, not used
        }
        if (t.quantize_row[id] != below.quantize_row[id] && (traits == nullptr || traits->from_float == nullptr)) {
            t.quantize_row[id] = below.quantize_row[id];
        }
    }
    return t;
}

// The tables above AVX2, table[2] up to table[top], each over the one below
// (table[1] must hold the AVX2 table), from the given registration functions.
void add_wide_tables(std::array<KernelTable, 5>& table, Isa top, const WideIsaFills& fills) {
    if (top >= Isa::Avx512) table[2] = overlay(table[1], Isa::Avx512, fills.avx512);
    if (top >= Isa::Avx512Vnni) table[3] = overlay(table[2], Isa::Avx512Vnni, fills.avx512vnni);
    // AMX adds the bf16 tile product; its other entries are the VNNI ones.
    if (top >= Isa::Amx) {
        table[4] = overlay(table[3], Isa::Amx, nullptr);
        fills.amx(&table[4].gemm_bf16);
        if (!gemm_bf16_self_check(table[4].gemm_bf16)) {
            MOELITE_LOG_WARN("cpu: the AMX bf16 tile product disagrees with its reference; prefill will not use it");
            table[4].gemm_bf16 = nullptr;
        }
    }
}

struct Tables {
    std::array<KernelTable, 5> table{};
    Isa best = Isa::Scalar;
};

const Tables& tables() {
    static const Tables built = [] {
        Tables t;
        t.best = isa_machine_best();
        t.table[0] = scalar_table();
        if (t.best >= Isa::Avx2) {
            t.table[1] = overlay(t.table[0], Isa::Avx2, fill_kernels_avx2, fill_gemm_avx2, fill_gemm_repacked_avx2,
                                 fill_float_rows_avx2);
            // Every type it fills has a reference (the tests compare them).
            fill_dequant_avx2(t.table[1].to_float);
            fill_attn_avx2(&t.table[1].attn_scores, &t.table[1].transpose32, &t.table[1].attn_accumulate,
                           &t.table[1].exp_sub);
        }
        add_wide_tables(t.table, t.best, WideIsaFills{fill_kernels_avx512, fill_kernels_avx512vnni, fill_gemm_amx});
        return t;
    }();
    return built;
}

}  // namespace

KernelTable assemble_wide_table(Isa isa, const WideIsaFills& fills) {
    MOELITE_ASSERT_MSG(isa >= Isa::Avx512 && isa <= Isa::Amx, "assemble_wide_table: not an ISA above AVX2");
    MOELITE_ASSERT_MSG(tables().best >= Isa::Avx2, "assemble_wide_table: the machine lacks AVX2");
    std::array<KernelTable, 5> table = tables().table;
    add_wide_tables(table, isa, fills);
    return table[size_t(isa)];
}

const KernelTable& kernel_table(Isa isa) {
    const Tables& t = tables();
    MOELITE_ASSERT_MSG(int(isa) >= 0 && int(isa) <= int(t.best), "kernel_table: ISA not supported on this machine");
    return t.table[size_t(isa)];
}

GemmFn fast_repacked_gemm(const KernelTable& kt, DType type) {
    const GemmFn gemm = kt.gemm_repacked[uint32_t(type)];
    return gemm != gemm_repacked_ref(type) ? gemm : nullptr;
}

const KernelTable& kernels() {
    return kernel_table(isa_active());
}

void gemm_tiles(const KernelTable& kt, DType type, int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride,
                const void* const* x_rows, float* const* out_rows) {
    if (const GemmFn gemm = kt.gemm[uint32_t(type)]) {
        gemm(k, m, n, w, w_stride, x_rows, out_rows);
        return;
    }
    VecDotFn dot = kt.vec_dot[uint32_t(type)];
    if (dot == nullptr) {
        const QuantTraits* traits = quant_traits(type);
        MOELITE_ASSERT_MSG(traits != nullptr && traits->vec_dot != nullptr, "gemm_tiles: no dot product for the type");
        dot = traits->vec_dot;
    }
    const char* rows = static_cast<const char*>(w);
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < m; ++i) dot(k, &out_rows[j][i], rows + size_t(i) * w_stride, x_rows[j]);
    }
}

}  // namespace moelite
