// mul_mat_id: the experts of a MoE layer, each weight matrix times the
// activation rows routed to it (conventions as ops_matmul.cpp's mul_mat).
//
// w [K, M, n_expert] holds one matrix per expert, ids [k, T] the k experts of
// each of T tokens, x [K, nx, T] the activation rows (nx = 1: one row per
// token, shared by its slots; nx = k: one per slot), out [M, k, T].
//
// Phases:
//  1. Every thread converts its share of the activation rows to the weight's
//     vec_dot_type; thread 0 sorts the (slot, token) pairs by expert (a
//     counting sort that keeps token order) and plans the work units.
//  2. With the AMX table (matmul::amx_weight_type) and at least kAmxMinCols
//     tokens, experts with at least kAmxMinExpertRows rows take the bf16 tile
//     product: their activation rows are rounded to bf16 rows (quant/gemm.h)
//     in blocks of kBf16PanelRows per expert (xblocks, the last padded with
//     zeros), shared by all threads, then a barrier.
//  3. The units, taken by the threads as they get to them
//     (OpContext::take_units): per chosen expert, blocks of
//     kBf16MaxRows weight rows (bf16 tiles, dequantized once per unit) or of
//     kRowsPerUnit rows (tile kernels; repacked on the fly into the thread's
//     scratch when the expert has at least kRepackMinTokens rows), each over
//     all of the expert's rows. Experts nobody chose are never touched.
#include <algorithm>
#include <cstring>
#include <optional>

#include "backends/cpu/ops.h"
#include "backends/cpu/ops_matmul_util.h"
#include "core/error.h"
#include "core/mmap.h"
#include "quant/kernels.h"
#include "quant/quant.h"
#include "quant/repack.h"

namespace moelite::cpu {

using namespace matmul;

namespace {

// Whether a batch's experts may be repacked on the fly (see op_mul_mat_id):
// the type has a repacked layout, there is more than one token, and the
// activation rows are converted (so they can carry the layout's extras).
bool moe_repacks(const Tensor& node) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    return node.src[2]->ne[1] > 1 && repack_supported(w.type, w.ne[0], kRepackRows) &&
           !x_used_in_place(x, quant_traits(w.type)->vec_dot_type);
}

// Whether some experts may go through the bf16 tiles (phase 2).
bool moe_amx(const Tensor& node, const KernelTable& kt) {
    return node.src[2]->ne[1] >= kAmxMinCols && amx_weight_type(kt, node.src[0]->type);
}

// Shared scratch of mul_mat_id after the converted rows: per expert the
// start of its list (n_expert + 1 ints, the last is k * T), a fill cursor per
// expert, the lists (k * T ints, each an output row j + k * t), the experts
// in use (a count, then n_expert ints), per expert in use the first of its
// units and of its xblocks (n_expert + 1 ints each, over the experts in use in
// order; an expert without xblocks takes the plain tiles), then the xblocks.
// Per thread: a gathered activation row, a unit of repacked rows, and for the
// tiles a float row, 16 weight rows in bf16 (the stage of weight_rows_to_panels),
// the unit's weight rows in bf16 panels and its outputs
// (experts are never repacked at load, so no group of rows is unpacked).
struct MoeLayout {
    size_t conv_bytes, offsets_at, cursor_at, entries_at, active_at, unit_first_at, xblock_first_at, xblocks_at, total;
    size_t gather_at, repack_at, float_at, stage_at, unit_at, out_at, per_thread;
};

MoeLayout moe_layout(const Tensor& node, const KernelTable& kt) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const Tensor& ids = *node.src[2];
    const int64_t K = w.ne[0], n_expert = w.ne[2], rows = ids.ne[0] * ids.ne[1];
    const DType vdt = quant_traits(w.type)->vec_dot_type;
    const bool amx = moe_amx(node, kt);
    auto ints = [](int64_t n) { return align_up(sizeof(int32_t) * size_t(n)); };
    MoeLayout l;
    l.conv_bytes = x_used_in_place(x, vdt) ? 0 : x_stride(w, moe_repacks(node)) * size_t(x.nrows());
    l.offsets_at = l.conv_bytes;
    l.cursor_at = l.offsets_at + ints(n_expert + 1);
    l.entries_at = l.cursor_at + ints(n_expert);
    l.active_at = l.entries_at + ints(rows);
    l.unit_first_at = l.active_at + ints(n_expert + 1);
    l.xblock_first_at = l.unit_first_at + ints(n_expert + 1);
    l.xblocks_at = l.xblock_first_at + ints(n_expert + 1);
    // An expert on tiles has at least kAmxMinExpertRows rows and its last
    // xblock is the only one not full: at most rows / kBf16PanelRows full
    // xblocks, and one more per such expert.
    const int64_t tile_experts = std::min(n_expert, rows / kAmxMinExpertRows);
    l.total = l.xblocks_at + (amx ? bf16_panel_bytes(K) * size_t(rows / kBf16PanelRows + tile_experts) : 0);

    l.gather_at = 0;
    l.repack_at = l.gather_at + align_up(sizeof(float) * size_t(K));
    l.float_at = l.repack_at + (moe_repacks(node) ? align_up(w.row_bytes() * size_t(kRowsPerUnit)) : 0);
    l.per_thread = l.float_at;
    if (amx) {
        l.stage_at = l.float_at + align_up(sizeof(float) * size_t(K));
        l.unit_at = l.stage_at + align_up(bf16_panel_bytes(K));
        l.out_at = l.unit_at + align_up(sizeof(uint16_t) * size_t(kBf16MaxRows * bf16_k_pad(K)));
        l.per_thread = l.out_at + align_up(sizeof(float) * size_t(kBf16MaxRows * rows));
    }
    return l;
}

}  // namespace

bool supports_mul_mat_id(const Tensor& node) {
    const Tensor* w = node.src[0];
    const Tensor* x = node.src[1];
    const Tensor* ids = node.src[2];
    if (!w || !x || !ids || node.type != DType::F32 || x->type != DType::F32 || ids->type != DType::I32) return false;
    DType vdt;
    if (!row_vec_dot(kernels(), w->type, &vdt) || !row_from_float(kernels(), vdt)) return false;
    if (!w->rows_contiguous() || node.nb[0] != sizeof(float) || w->ne[3] != 1) return false;
    if (w->flags & kTensorRepacked) return false;  // experts stay in the file's layout
    if (w->ne[0] != x->ne[0] || w->ne[0] % dtype_block_size(vdt) != 0) return false;
    const int64_t k = ids->ne[0], T = ids->ne[1];
    if (ids->ne[2] != 1 || ids->ne[3] != 1 || x->ne[3] != 1 || x->ne[2] != T) return false;
    if (x->ne[1] != 1 && x->ne[1] != k) return false;
    return node.ne[0] == w->ne[1] && node.ne[1] == k && node.ne[2] == T && node.ne[3] == 1;
}

WorkSize work_size_mul_mat_id(const Tensor& node, const KernelTable& kt, int) {
    const MoeLayout l = moe_layout(node, kt);
    return {l.total, l.per_thread};
}

void op_mul_mat_id(const Tensor& node, const OpContext& ctx) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const Tensor& ids = *node.src[2];
    const int64_t K = w.ne[0], M = w.ne[1], n_expert = w.ne[2];
    const int64_t k = ids.ne[0], T = ids.ne[1], nx = x.ne[1];
    const DType vdt = quant_traits(w.type)->vec_dot_type;  // supports_mul_mat*() checked there is one
    const bool in_place = x_used_in_place(x, vdt);
    const bool repacks = moe_repacks(node);
    const bool amx = moe_amx(node, *ctx.kt);
    const size_t stride = x_stride(w, repacks);
    const MoeLayout l = moe_layout(node, *ctx.kt);
    int32_t* offsets = reinterpret_cast<int32_t*>(ctx.wdata + l.offsets_at);
    int32_t* cursor = reinterpret_cast<int32_t*>(ctx.wdata + l.cursor_at);
    int32_t* entries = reinterpret_cast<int32_t*>(ctx.wdata + l.entries_at);
    int32_t* active = reinterpret_cast<int32_t*>(ctx.wdata + l.active_at);
    int32_t* unit_first = reinterpret_cast<int32_t*>(ctx.wdata + l.unit_first_at);
    int32_t* xblock_first = reinterpret_cast<int32_t*>(ctx.wdata + l.xblock_first_at);
    char* xblocks = ctx.wdata + l.xblocks_at;
    char* scratch = ctx.thread_scratch();

    // The units (below) are taken as the threads get to them: experts with
    // more rows of the batch make longer units.
    UnitTake take = ctx.start_units();
    if (!in_place) {
        int64_t r0, r1;
        split_range(x.nrows(), ctx.ith, ctx.nth, &r0, &r1);
        convert_rows(x, r0, r1, row_from_float(*ctx.kt, vdt), ctx.wdata, stride,
                     reinterpret_cast<float*>(scratch + l.gather_at),
                     repacks ? std::optional<DType>(w.type) : std::nullopt);
    }
    auto expert_of = [&](int64_t j, int64_t t) {
        int32_t e;
        std::memcpy(&e, static_cast<const char*>(ids.data) + j * ids.nb[0] + t * ids.nb[1], 4);
        return e;
    };
    auto rows_of = [&](int32_t e) { return offsets[e + 1] - offsets[e]; };
    auto on_tiles = [&](int32_t e) { return amx && rows_of(e) >= kAmxMinExpertRows; };
    if (ctx.ith == 0) {
        // Counting sort of the output rows by expert, keeping token order.
        std::fill(offsets, offsets + n_expert + 1, 0);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < k; ++j) {
                const int32_t e = expert_of(j, t);
                MOELITE_ASSERT_MSG(e >= 0 && e < n_expert, "mul_mat_id: expert id out of range");
                ++offsets[e + 1];
            }
        int32_t n_active = 0;
        for (int64_t e = 0; e < n_expert; ++e) {
            if (offsets[e + 1] > 0) active[1 + n_active++] = int32_t(e);
            offsets[e + 1] += offsets[e];
            cursor[e] = offsets[e];
        }
        active[0] = n_active;
        // Start reading the chosen experts' slices from a cold file mapping
        // now, exactly them: their page faults then find the pages cached and
        // trigger no read-around of the unchosen neighbours (bench/README.md:
        // a cold V2-Lite run twice as fast, page cache ~ the weights read).
        for (int32_t i = 0; i < n_active; ++i)
            prefetch_mapped(static_cast<const char*>(w.data) + active[1 + i] * w.nb[2], w.nb[2]);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < k; ++j) entries[cursor[expert_of(j, t)]++] = int32_t(j + k * t);
        // The units and xblocks of each expert in use, in order.
        unit_first[0] = xblock_first[0] = 0;
        for (int32_t i = 0; i < n_active; ++i) {
            const int32_t e = active[1 + i];
            const int64_t block = on_tiles(e) ? kBf16MaxRows : kRowsPerUnit;
            unit_first[i + 1] = unit_first[i] + int32_t((M + block - 1) / block);
            xblock_first[i + 1] =
                xblock_first[i] + (on_tiles(e) ? int32_t((rows_of(e) + kBf16PanelRows - 1) / kBf16PanelRows) : 0);
        }
    }
    ctx.barrier();
    const int32_t n_active = active[0];
    const size_t xblock_bytes = amx ? bf16_panel_bytes(K) : 0;
    auto* floats = reinterpret_cast<float*>(scratch + l.float_at);
    // The expert in use whose range of `first` holds index u.
    auto owner = [&](const int32_t* first, int64_t u) {
        return int32_t(std::upper_bound(first, first + n_active + 1, int32_t(u)) - first) - 1;
    };

    if (amx && xblock_first[n_active] > 0) {
        int64_t p0, p1;
        split_range(xblock_first[n_active], ctx.ith, ctx.nth, &p0, &p1);
        for (int64_t p = p0; p < p1; ++p) {
            const int32_t i = owner(xblock_first, p), e = active[1 + i];
            auto* rows = reinterpret_cast<uint16_t*>(xblocks + size_t(p) * xblock_bytes);
            for (int64_t r = 0; r < kBf16PanelRows; ++r) {
                const int64_t q = offsets[e] + (p - xblock_first[i]) * kBf16PanelRows + r;
                const void* row = nullptr;
                if (q < offsets[e + 1])
                    row = x_row(x, in_place, ctx.wdata, stride, (entries[q] % k) % nx, entries[q] / k, 0);
                activation_to_bf16(*ctx.kt, vdt, row, K, floats, rows + r * bf16_k_pad(K));
            }
        }
        ctx.barrier();
    }

    // A unit on the plain tiles whose expert has at least kRepackMinTokens
    // rows of the batch is first repacked into the thread's scratch
    // (quant/repack.h): the interleaved kernel then runs over all of them,
    // and the byte shuffle, once per unit, costs a few percent of that.
    const GemmFn repacked_gemm = repacks ? fast_repacked_gemm(*ctx.kt, w.type) : nullptr;
    char* unit_rows = scratch + l.repack_at;
    auto out_row = [&](int32_t entry, int64_t m0) {
        const int64_t j = entry % k, t = entry / k;
        return reinterpret_cast<float*>(static_cast<char*>(node.data) + j * node.nb[1] + t * node.nb[2]) + m0;
    };
    while (ctx.take_units(unit_first[n_active], 1, &take)) {
        for (int64_t u = take.begin; u < take.end; ++u) {
            const int32_t i = owner(unit_first, u), e = active[1 + i];
            const int32_t begin = offsets[e], end = offsets[e + 1];
            const char* wb = static_cast<const char*>(w.data) + e * w.nb[2];
            if (on_tiles(e)) {
                const int64_t m0 = (u - unit_first[i]) * kBf16MaxRows, rows = std::min(kBf16MaxRows, M - m0);
                char* unit = scratch + l.unit_at;
                auto* out = reinterpret_cast<float*>(scratch + l.out_at);
                weight_rows_to_panels(*ctx.kt, w, wb, m0, rows, floats,
                                      reinterpret_cast<uint16_t*>(scratch + l.stage_at), nullptr, unit);
                ctx.kt->gemm_bf16(bf16_k_pad(K), rows, end - begin, unit,
                                  reinterpret_cast<const uint16_t*>(xblocks + size_t(xblock_first[i]) * xblock_bytes),
                                  sizeof(uint16_t) * size_t(bf16_k_pad(K)), out, sizeof(float) * kBf16MaxRows);
                for (int32_t q = begin; q < end; ++q)
                    std::memcpy(out_row(entries[q], m0), out + size_t(q - begin) * kBf16MaxRows,
                                sizeof(float) * size_t(rows));
                continue;
            }
            const int64_t m0 = (u - unit_first[i]) * kRowsPerUnit, m_end = std::min(M, m0 + kRowsPerUnit);
            const bool repack_unit =
                repacked_gemm && end - begin >= kRepackMinTokens && (m_end - m0) % kRepackRows == 0;
            if (repack_unit)
                repack_rows(w.type, K, m_end - m0, wb + m0 * w.nb[1], w.nb[1], unit_rows, ctx.kt->repack_chunks);
            // The expert's rows in chunks of kColsPerUnit, each one tile call.
            const void* x_rows[kColsPerUnit];
            float* out_rows[kColsPerUnit];
            for (int32_t q0 = begin; q0 < end; q0 += int32_t(kColsPerUnit)) {
                const int32_t q1 = std::min<int32_t>(end, q0 + int32_t(kColsPerUnit));
                for (int32_t q = q0; q < q1; ++q) {
                    x_rows[q - q0] = x_row(x, in_place, ctx.wdata, stride, (entries[q] % k) % nx, entries[q] / k, 0);
                    out_rows[q - q0] = out_row(entries[q], m0);
                }
                if (repack_unit) {
                    repacked_gemm(K, m_end - m0, q1 - q0, unit_rows, w.row_bytes(), x_rows, out_rows);
                } else {
                    gemm_tiles(*ctx.kt, w.type, K, m_end - m0, q1 - q0, wb + m0 * w.nb[1], w.nb[1], x_rows, out_rows);
                }
            }
        }
    }
}

}  // namespace moelite::cpu
