// mul_mat: quantized weight rows times activation rows, and the helpers it
// shares with mul_mat_id (ops_matmul_id.cpp, through ops_matmul_util.h).
//
// Convention (core/graph.h): w [K, M, ...] holds one output per row, x
// [K, N, ...] one activation per row, out[m, n] = dot(w row m, x row n).
//
// Two phases. First every activation row is converted once to the weight's
// vec_dot_type (Q8_0, Q8_K, F16, ...) into shared scratch, split across
// threads by rows; F32 weights read contiguous F32 rows in place. After a
// barrier, the outputs are split into units of up to kRowsPerUnit weight
// rows by kColsPerUnit activation rows, which the threads take as they get to
// them (OpContext::take_units: long contiguous stretches first, so in decode
// (N = 1) each thread streams a slice of the weights), and in prefill a block
// of weight rows stays in cache while the activation rows pass over it. Each
// unit (in decode, each run of a take's units) is one call of the kernel
// table's tile kernel (gemm_tiles, quant/gemm.h), which shares activation
// loads across weight rows and weight unpacking across activation rows; types
// without one loop over vec_dot.
//
// Repacked weights (quant/repack.h): a weight the backend repacked at load
// (kTensorRepacked), and in prefill any weight whose type has a layout (its
// rows repacked 64 at a time into the thread's scratch: mul_mat_fly; per
// expert in mul_mat_id), take activation rows carrying the extras their
// kernels read (block sums), go by whole groups of 8 rows, and run the
// table's gemm_repacked.
//
// With the AMX table (Isa::Amx), quantized weights times at least
// kAmxMinCols activation rows take the bf16 tile product instead
// (mul_mat_amx, quant/gemm.h): weights dequantized to bf16 once per call,
// activations rounded to bf16 after the same vec_dot_type rounding as the
// other paths.
//
// With OpenBLAS (MOELITE_HAVE_OPENBLAS), F32/F16/BF16 weights times at least
// blas_min_cols activation rows (CpuBackendOptions, default 32) go to
// cblas_sgemm: each thread multiplies its own range of weight rows (F16/BF16
// dequantized kBlasChunkRows rows at a time into its scratch), with OpenBLAS
// itself single-threaded (set by the backend) so the two pools never compete
// for the cores.
//
// The threshold, measured (2048 x 2048 weights, best of 5-20 runs, 1 thread,
// the project's 2-core AMD EPYC AVX2 build machine, shared and loaded, so
// +-30%), vec_dot path vs sgemm in ms:
//   N      1     4     8    16    24    32    64   128
//   F32  0.9/2.3 2.1/2.0 3.0/2.5 8.7/5.3 10/4.0 16/4.8 35/14 70/40
//   F16  0.4/12  1.7/20  3.7/11  11/21   22/26  33/26  76/34 152/55
// F32 breaks even near N = 4..8; F16 (whose sgemm path first dequantizes
// every weight with the scalar reference) near N = 24..32. One threshold of
// 32 keeps decode and small batches on vec_dot and sends prefill to sgemm.
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

#ifdef MOELITE_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace moelite::cpu {

// ---- helpers shared with mul_mat_id (ops_matmul_util.h) ----------------------

namespace matmul {

size_t converted_row_stride(DType vdt, int64_t k) {
    return align_up(dtype_row_bytes(vdt, k));
}

size_t x_stride(const Tensor& w, bool extras) {
    if (extras) return align_up(repacked_x_row_bytes(w.type, w.ne[0]));
    return converted_row_stride(quant_traits(w.type)->vec_dot_type, w.ne[0]);
}

bool x_used_in_place(const Tensor& x, DType vdt) {
    return vdt == DType::F32 && x.nb[0] == sizeof(float);
}

const float* x_row_floats(const Tensor& x, int64_t i1, int64_t i2, int64_t i3, float* gather) {
    const char* src = static_cast<const char*>(x.data) + i1 * x.nb[1] + i2 * x.nb[2] + i3 * x.nb[3];
    if (x.nb[0] == sizeof(float)) return reinterpret_cast<const float*>(src);
    for (int64_t i = 0; i < x.ne[0]; ++i) std::memcpy(&gather[i], src + i * x.nb[0], 4);
    return gather;
}

void convert_rows(const Tensor& x, int64_t r0, int64_t r1, FromFloatFn convert, char* dst, size_t stride, float* gather,
                  std::optional<DType> extras_for) {
    const int64_t k = x.ne[0];
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i1 = r % x.ne[1], i2 = (r / x.ne[1]) % x.ne[2], i3 = r / (x.ne[1] * x.ne[2]);
        convert(x_row_floats(x, i1, i2, i3, gather), dst + size_t(r) * stride, k);
        if (extras_for) repacked_x_finish(*extras_for, dst + size_t(r) * stride, k);
    }
}

bool amx_weight_type(const KernelTable& kt, DType type) {
    return kt.gemm_bf16 != nullptr && dtype_block_size(type) > 1 && row_to_float(type) != nullptr;
}

int64_t bf16_k_pad(int64_t k) {
    return (k + kBf16Chunk - 1) / kBf16Chunk * kBf16Chunk;
}

size_t bf16_panel_bytes(int64_t k) {
    return size_t(bf16_k_pad(k) / kBf16Chunk) * kBf16ChunkBytes;
}

void weight_rows_to_panels(const KernelTable& kt, const Tensor& w, const char* base, int64_t first, int64_t rows,
                           float* floats, uint16_t* stage, char* group, char* dst) {
    const int64_t K = w.ne[0], k_pad = bf16_k_pad(K);
    const bool repacked = (w.flags & kTensorRepacked) != 0;
    const ToFloatFn to_float = row_to_float(kt, w.type);
    const FromFloatFn to_bf16 = row_from_float(kt, DType::BF16);
    for (int64_t i0 = 0; i0 < rows; i0 += kBf16PanelRows) {
        const int64_t n = std::min(kBf16PanelRows, rows - i0);
        for (int64_t i = i0; i < i0 + n; ++i) {
            const char* src = base + (first + i) * w.nb[1];
            if (repacked) {
                // Whole groups: the matrix and `first` are multiples of kRepackRows.
                if (i % kRepackRows == 0) unpack_rows(w.type, K, kRepackRows, src, group);
                src = group + (i % kRepackRows) * w.row_bytes();
            }
            uint16_t* row = stage + (i - i0) * k_pad;
            to_float(src, floats, K);
            to_bf16(floats, row, K);
            std::fill(row + K, row + k_pad, uint16_t(0));
        }
        // Line r of chunk c holds each row's pair 16 c + r (quant/gemm.h):
        // the panel is the rows' pairs transposed, 16 per line.
        kt.transpose32(k_pad / 2, n, stage, size_t(k_pad / 2), dst + size_t(i0 / kBf16PanelRows) * bf16_panel_bytes(K),
                       size_t(kBf16PanelRows));
    }
}

void activation_to_bf16(const KernelTable& kt, DType vdt, const void* converted, int64_t k, float* floats,
                        uint16_t* dst) {
    const int64_t k_pad = bf16_k_pad(k);
    if (converted == nullptr) {
        std::fill(dst, dst + k_pad, uint16_t(0));
        return;
    }
    row_to_float(kt, vdt)(converted, floats, k);
    row_from_float(kt, DType::BF16)(floats, dst, k);
    std::fill(dst + k, dst + k_pad, uint16_t(0));
}

}  // namespace matmul

using namespace matmul;

namespace {

// mul_mat's units of weight rows repacked on the fly have up to kFlyRows rows.
constexpr int64_t kFlyRows = 64;

#ifdef MOELITE_HAVE_OPENBLAS
constexpr int64_t kBlasChunkRows = 64;

bool use_blas(const Tensor& node, int64_t blas_min_cols) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    if (w.type != DType::F32 && w.type != DType::F16 && w.type != DType::BF16) return false;
    if (blas_min_cols <= 0 || x.ne[1] < blas_min_cols) return false;
    // sgemm needs unit element strides and row strides of whole floats, at
    // least a row long.
    auto plain_rows = [](const Tensor& t) {
        return t.nb[0] == sizeof(float) && t.nb[1] % sizeof(float) == 0 && t.nb[1] >= sizeof(float) * size_t(t.ne[0]);
    };
    return plain_rows(x) && plain_rows(node) && (w.type != DType::F32 || plain_rows(w));
}
#endif

// Whether mul_mat repacks its weight's rows unit by unit (see op_mul_mat): a
// weight in the file's layout whose type has a repacked layout, times at
// least kRepackMinTokens activation rows (prefill).
bool repacks_on_the_fly(const Tensor& node) {
    const Tensor& w = *node.src[0];
    return !(w.flags & kTensorRepacked) && node.src[1]->ne[1] >= kRepackMinTokens &&
           repack_supported(w.type, w.ne[0], kRepackRows);
}

// Whether the converted activation rows carry the extras of quant/repack.h.
bool x_with_extras(const Tensor& node) {
    return (node.src[0]->flags & kTensorRepacked) || repacks_on_the_fly(node);
}

#ifdef MOELITE_HAVE_OPENBLAS
void mul_mat_blas(const Tensor& node, const OpContext& ctx) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const int64_t K = w.ne[0], M = w.ne[1], N = x.ne[1];
    const int64_t r2 = x.ne[2] / w.ne[2], r3 = x.ne[3] / w.ne[3];
    const ToFloatFn to_float = w.type == DType::F32 ? nullptr : row_to_float(*ctx.kt, w.type);
    float* chunk = reinterpret_cast<float*>(ctx.thread_scratch());

    int64_t m0, m1;
    split_range(M, ctx.ith, ctx.nth, &m0, &m1);
    for (int64_t i3 = 0; i3 < x.ne[3]; ++i3) {
        for (int64_t i2 = 0; i2 < x.ne[2]; ++i2) {
            const char* wb = static_cast<const char*>(w.data) + (i2 / r2) * w.nb[2] + (i3 / r3) * w.nb[3];
            const float* xb = reinterpret_cast<const float*>(static_cast<const char*>(x.data) + i2 * x.nb[2] +
                                                             i3 * x.nb[3]);
            float* ob = reinterpret_cast<float*>(static_cast<char*>(node.data) + i2 * node.nb[2] + i3 * node.nb[3]);
            const int64_t step = to_float ? kBlasChunkRows : std::max<int64_t>(1, m1 - m0);
            for (int64_t c0 = m0; c0 < m1; c0 += step) {
                const int64_t rows = std::min(step, m1 - c0);
                const float* wp;
                int64_t ldw;
                if (to_float) {
                    for (int64_t m = 0; m < rows; ++m) to_float(wb + (c0 + m) * w.nb[1], chunk + m * K, K);
                    wp = chunk;
                    ldw = K;
                } else {
                    wp = reinterpret_cast<const float*>(wb + c0 * w.nb[1]);
                    ldw = int64_t(w.nb[1] / sizeof(float));
                }
                // out[n, c0 + m] = sum_k x[n, k] * w[c0 + m, k]: C (N x rows) = X (N x K) * W^T.
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(N), int(rows), int(K), 1.0f, xb,
                            int(x.nb[1] / sizeof(float)), wp, int(ldw), 0.0f, ob + c0, int(node.nb[1] / sizeof(float)));
            }
        }
    }
}
#endif

}  // namespace

bool supports_mul_mat(const Tensor& node) {
    const Tensor* w = node.src[0];
    const Tensor* x = node.src[1];
    if (!w || !x || node.type != DType::F32 || x->type != DType::F32) return false;
    DType vdt;
    if (!row_vec_dot(kernels(), w->type, &vdt) || !row_from_float(kernels(), vdt)) return false;
    if (!w->rows_contiguous() || node.nb[0] != sizeof(float)) return false;
    if ((w->flags & kTensorRepacked) &&
        (w->ne[2] != 1 || w->ne[3] != 1 || !repack_supported(w->type, w->ne[0], w->ne[1]) ||
         w->nb[1] != w->row_bytes()))
        return false;
    if (w->ne[0] != x->ne[0] || w->ne[0] % dtype_block_size(vdt) != 0) return false;
    if (w->ne[2] == 0 || w->ne[3] == 0 || x->ne[2] % w->ne[2] != 0 || x->ne[3] % w->ne[3] != 0) return false;
    return node.ne[0] == w->ne[1] && node.ne[1] == x->ne[1] && node.ne[2] == x->ne[2] && node.ne[3] == x->ne[3];
}

namespace {

// Whether mul_mat goes through the bf16 tile product (mul_mat_amx): a weight
// type the table multiplies on bf16 tiles, and enough activation rows to pay
// for dequantizing the weights once per call.
bool uses_amx(const Tensor& node, const KernelTable& kt) {
    return node.src[1]->ne[1] >= kAmxMinCols && amx_weight_type(kt, node.src[0]->type);
}

// Scratch of mul_mat_amx. Shared: the activation rows as bf16 (quant/gemm.h),
// per batch, in blocks of kBf16PanelRows rows (the last one padded with
// zeros). Per thread: a gathered activation row, its vec_dot_type row, a
// float row, 16 weight rows in bf16 (weight_rows_to_panels' stage), the
// unit's weight rows in bf16 panels, and a group of rows unpacked from the
// repacked layout.
struct AmxLayout {
    int64_t n_panels;
    size_t panel_bytes, shared;
    size_t gather_at, quant_at, float_at, stage_at, unit_at, group_at, per_thread;
};

AmxLayout amx_layout(const Tensor& node) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const int64_t K = w.ne[0];
    AmxLayout l;
    l.n_panels = (x.ne[1] + kBf16PanelRows - 1) / kBf16PanelRows;
    l.panel_bytes = bf16_panel_bytes(K);
    l.shared = l.panel_bytes * size_t(l.n_panels * x.ne[2] * x.ne[3]);
    l.gather_at = 0;
    l.quant_at = l.gather_at + align_up(sizeof(float) * size_t(K));
    l.float_at = l.quant_at + align_up(dtype_row_bytes(quant_traits(w.type)->vec_dot_type, K));
    l.stage_at = l.float_at + align_up(sizeof(float) * size_t(K));
    l.unit_at = l.stage_at + align_up(bf16_panel_bytes(K));
    l.group_at = l.unit_at + align_up(sizeof(uint16_t) * size_t(kBf16MaxRows * bf16_k_pad(K)));
    l.per_thread = l.group_at + ((w.flags & kTensorRepacked) ? align_up(w.row_bytes() * size_t(kRepackRows)) : 0);
    return l;
}

}  // namespace

WorkSize work_size_mul_mat(const Tensor& node, const KernelTable& kt, int nth, int64_t blas_min_cols) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    if (uses_amx(node, kt)) {
        const AmxLayout l = amx_layout(node);
        return {l.shared, l.per_thread};
    }
    WorkSize ws;
#ifdef MOELITE_HAVE_OPENBLAS
    if (use_blas(node, blas_min_cols)) {
        if (w.type != DType::F32) ws.per_thread = align_up(sizeof(float) * size_t(kBlasChunkRows * w.ne[0]));
        return ws;
    }
#endif
    const DType vdt = quant_traits(w.type)->vec_dot_type;
    if (!x_used_in_place(x, vdt)) ws.shared = x_stride(*node.src[0], x_with_extras(node)) * size_t(x.nrows());
    // Per thread: a gathered activation row, and a unit of repacked rows.
    ws.per_thread = align_up(sizeof(float) * size_t(x.ne[0]));
    if (repacks_on_the_fly(node)) ws.per_thread += align_up(w.row_bytes() * size_t(kFlyRows));
    return ws;
}

namespace {

// mul_mat repacking on the fly (repacks_on_the_fly): units of kFlyRows
// weight rows (fewer when that leaves a thread idle), each repacked once into
// the thread's scratch and then multiplied with every activation row, in
// column blocks of kColsPerUnit. The activation rows stream from cache for
// each unit; the repacked rows stay in L2. (Units of 16 rows by 64 columns,
// as the other paths, repacked each row block once per column block or
// streamed every activation row for 16 rows only: pp512 of the Q4_K_M 1.5B
// file 43-56 t/s, against 65 with these.)
void mul_mat_fly(const Tensor& node, const OpContext& ctx, size_t stride, char* unit_rows) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const int64_t K = w.ne[0], M = w.ne[1], N = x.ne[1];
    const int64_t r2 = x.ne[2] / w.ne[2], r3 = x.ne[3] / w.ne[3];
    const int64_t n_batch = x.ne[2] * x.ne[3];
    const bool repacked = (w.flags & kTensorRepacked) != 0;
    const GemmFn gemm = ctx.kt->gemm_repacked[uint32_t(w.type)];
    int64_t rows_per_unit = kFlyRows;
    while (rows_per_unit > kRepackRows && n_batch * ((M + rows_per_unit - 1) / rows_per_unit) < 2 * ctx.nth)
        rows_per_unit /= 2;
    const int64_t n_rblk = (M + rows_per_unit - 1) / rows_per_unit;
    int64_t u0, u1;
    split_range(n_batch * n_rblk, ctx.ith, ctx.nth, &u0, &u1);
    for (int64_t u = u0; u < u1; ++u) {
        const int64_t rb = u % n_rblk, b = u / n_rblk;
        const int64_t i2 = b % x.ne[2], i3 = b / x.ne[2];
        const char* wb = static_cast<const char*>(w.data) + (i2 / r2) * w.nb[2] + (i3 / r3) * w.nb[3];
        char* ob = static_cast<char*>(node.data) + i2 * node.nb[2] + i3 * node.nb[3];
        const int64_t m0 = rb * rows_per_unit, m_end = std::min(M, m0 + rows_per_unit);
        const int64_t whole = (m_end - m0) / kRepackRows * kRepackRows;  // the rest: plain tiles
        // A weight repacked at load is read in place.
        const char* rows = wb + m0 * w.nb[1];
        if (!repacked && whole > 0) {
            repack_rows(w.type, K, whole, rows, w.nb[1], unit_rows, ctx.kt->repack_chunks);
            rows = unit_rows;
        }
        for (int64_t n0 = 0; n0 < N; n0 += kColsPerUnit) {
            const int64_t n_end = std::min(N, n0 + kColsPerUnit);
            const void* x_rows[kColsPerUnit];
            float* out_rows[kColsPerUnit];
            for (int64_t n = n0; n < n_end; ++n) {
                x_rows[n - n0] = x_row(x, false, ctx.wdata, stride, n, i2, i3);
                out_rows[n - n0] = reinterpret_cast<float*>(ob + n * node.nb[1]) + m0;
            }
            if (whole > 0) gemm(K, whole, n_end - n0, rows, w.row_bytes(), x_rows, out_rows);
            if (whole < m_end - m0) {
                for (int64_t n = n0; n < n_end; ++n) out_rows[n - n0] += whole;
                gemm_tiles(*ctx.kt, w.type, K, m_end - m0 - whole, n_end - n0, wb + (m0 + whole) * w.nb[1], w.nb[1],
                           x_rows, out_rows);
            }
        }
    }
}

// mul_mat through the bf16 tile product (uses_amx). First the activation rows
// are rounded as every other path rounds them (to the weight's vec_dot_type
// and back), then to bf16 (quant/gemm.h), 16 rows per unit of work. After a
// barrier, units of kBf16MaxRows weight rows: each thread dequantizes its
// unit's rows to bf16 panels once into its scratch and multiplies them with
// every activation row of the batch.
void mul_mat_amx(const Tensor& node, const OpContext& ctx) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const int64_t K = w.ne[0], M = w.ne[1], N = x.ne[1];
    const int64_t r2 = x.ne[2] / w.ne[2], r3 = x.ne[3] / w.ne[3];
    const int64_t n_batch = x.ne[2] * x.ne[3];
    const AmxLayout l = amx_layout(node);
    const DType vdt = quant_traits(w.type)->vec_dot_type;
    char* scratch = ctx.thread_scratch();
    auto* gather = reinterpret_cast<float*>(scratch + l.gather_at);
    auto* floats = reinterpret_cast<float*>(scratch + l.float_at);
    auto* stage = reinterpret_cast<uint16_t*>(scratch + l.stage_at);
    char* unit = scratch + l.unit_at;

    const FromFloatFn quantize = row_from_float(*ctx.kt, vdt);
    int64_t p0, p1;
    split_range(n_batch * l.n_panels, ctx.ith, ctx.nth, &p0, &p1);
    for (int64_t p = p0; p < p1; ++p) {
        const int64_t b = p / l.n_panels, i2 = b % x.ne[2], i3 = b / x.ne[2];
        auto* rows = reinterpret_cast<uint16_t*>(ctx.wdata + size_t(p) * l.panel_bytes);
        for (int64_t j = 0; j < kBf16PanelRows; ++j) {
            const int64_t n = (p % l.n_panels) * kBf16PanelRows + j;
            uint16_t* dst = rows + j * bf16_k_pad(K);
            if (n >= N) {
                activation_to_bf16(*ctx.kt, vdt, nullptr, K, floats, dst);
                continue;
            }
            quantize(x_row_floats(x, n, i2, i3, gather), scratch + l.quant_at, K);
            activation_to_bf16(*ctx.kt, vdt, scratch + l.quant_at, K, floats, dst);
        }
    }
    ctx.barrier();

    const int64_t n_mblk = (M + kBf16MaxRows - 1) / kBf16MaxRows;
    int64_t u0, u1;
    split_range(n_batch * n_mblk, ctx.ith, ctx.nth, &u0, &u1);
    for (int64_t u = u0; u < u1; ++u) {
        const int64_t b = u / n_mblk, i2 = b % x.ne[2], i3 = b / x.ne[2];
        const int64_t m0 = (u % n_mblk) * kBf16MaxRows, rows = std::min(kBf16MaxRows, M - m0);
        const char* wb = static_cast<const char*>(w.data) + (i2 / r2) * w.nb[2] + (i3 / r3) * w.nb[3];
        weight_rows_to_panels(*ctx.kt, w, wb, m0, rows, floats, stage, scratch + l.group_at, unit);
        float* out = reinterpret_cast<float*>(static_cast<char*>(node.data) + i2 * node.nb[2] + i3 * node.nb[3]) + m0;
        ctx.kt->gemm_bf16(bf16_k_pad(K), rows, N, unit,
                          reinterpret_cast<const uint16_t*>(ctx.wdata + size_t(b * l.n_panels) * l.panel_bytes),
                          sizeof(uint16_t) * size_t(bf16_k_pad(K)), out, node.nb[1]);
    }
}

}  // namespace

void op_mul_mat(const Tensor& node, const OpContext& ctx) {
#ifdef MOELITE_HAVE_OPENBLAS
    if (use_blas(node, ctx.blas_min_cols)) {
        mul_mat_blas(node, ctx);
        return;
    }
#endif
    if (uses_amx(node, *ctx.kt)) {
        mul_mat_amx(node, ctx);
        return;
    }
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const int64_t K = w.ne[0], M = w.ne[1], N = x.ne[1];
    const int64_t r2 = x.ne[2] / w.ne[2], r3 = x.ne[3] / w.ne[3];
    const DType vdt = quant_traits(w.type)->vec_dot_type;  // supports_mul_mat*() checked there is one
    const bool repacked = (w.flags & kTensorRepacked) != 0;
    const bool extras = x_with_extras(node);
    const bool in_place = x_used_in_place(x, vdt) && !extras;
    const size_t stride = x_stride(w, extras);
    const bool fly = repacks_on_the_fly(node) && fast_repacked_gemm(*ctx.kt, w.type);
    char* unit_rows = ctx.thread_scratch() + align_up(sizeof(float) * size_t(K));

    // Units taken as the threads get to them where the conversion's barrier
    // comes between start and take; else split evenly.
    UnitTake take;
    if (!in_place) {
        take = ctx.start_units();
        int64_t r0, r1;
        split_range(x.nrows(), ctx.ith, ctx.nth, &r0, &r1);
        convert_rows(x, r0, r1, row_from_float(*ctx.kt, vdt), ctx.wdata, stride,
                     reinterpret_cast<float*>(ctx.thread_scratch()),
                     extras ? std::optional<DType>(w.type) : std::nullopt);
        ctx.barrier();
    }

    const int64_t n_batch = x.ne[2] * x.ne[3];
    // Prefill over repacked rows, repacked at load or now, goes by units of
    // whole rows (mul_mat_fly); decode, and plain tiles, below.
    if (fly || (repacked && N >= kRepackMinTokens)) {
        mul_mat_fly(node, ctx, stride, unit_rows);
        return;
    }
    const int64_t n_cblk = (N + kColsPerUnit - 1) / kColsPerUnit;
    int64_t rows_per_unit = kRowsPerUnit;
    // Repacked weights go by whole groups of rows (quant/repack.h).
    const int64_t min_rows = repacked ? kRepackRows : 1;
    if (n_batch * n_cblk * ((M + kRowsPerUnit - 1) / kRowsPerUnit) < 4 * ctx.nth) rows_per_unit = min_rows;
    const int64_t n_rblk = (M + rows_per_unit - 1) / rows_per_unit;

    while (ctx.take_units(n_batch * n_cblk * n_rblk, 1, &take)) {
        for (int64_t u = take.begin; u < take.end;) {
            const int64_t rb = u % n_rblk, cb = (u / n_rblk) % n_cblk, b = u / (n_rblk * n_cblk);
            // One activation row (decode): the take's consecutive row units
            // of one batch go to the tiles as one range. Each weight row is
            // read once either way; this saves a call and the divisions
            // above per unit (op_mul_mat's own samples were 1.2 % of a Q8_0
            // decode's in perf).
            const int64_t run = N == 1 ? std::min(take.end - u, n_rblk - rb) : 1;
            u += run;
            const int64_t i2 = b % x.ne[2], i3 = b / x.ne[2];
            const char* wb = static_cast<const char*>(w.data) + (i2 / r2) * w.nb[2] + (i3 / r3) * w.nb[3];
            char* ob = static_cast<char*>(node.data) + i2 * node.nb[2] + i3 * node.nb[3];
            const int64_t m0 = rb * rows_per_unit, m_end = std::min(M, (rb + run) * rows_per_unit);
            const int64_t n0 = cb * kColsPerUnit, n_end = std::min(N, n0 + kColsPerUnit);
            const void* x_rows[kColsPerUnit];
            float* out_rows[kColsPerUnit];
            for (int64_t n = n0; n < n_end; ++n) {
                x_rows[n - n0] = x_row(x, in_place, ctx.wdata, stride, n, i2, i3);
                out_rows[n - n0] = reinterpret_cast<float*>(ob + n * node.nb[1]) + m0;
            }
            if (repacked) {
                ctx.kt->gemm_repacked[uint32_t(w.type)](K, m_end - m0, n_end - n0, wb + m0 * w.nb[1], w.nb[1], x_rows,
                                                        out_rows);
            } else {
                gemm_tiles(*ctx.kt, w.type, K, m_end - m0, n_end - n0, wb + m0 * w.nb[1], w.nb[1], x_rows, out_rows);
            }
        }
    }
}

}  // namespace moelite::cpu
