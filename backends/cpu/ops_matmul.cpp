// mul_mat and mul_mat_id: quantized weight rows times activation rows.
//
// Convention (core/graph.h): w [K, M, ...] holds one output per row, x
// [K, N, ...] one activation per row, out[m, n] = dot(w row m, x row n).
//
// Two phases. First every activation row is converted once to the weight's
// vec_dot_type (Q8_0, Q8_K, F16, ...) into shared scratch, split across
// threads by rows; F32 weights read contiguous F32 rows in place. After a
// barrier, the outputs are split into units of up to kRowsPerUnit weight
// rows by kColsPerUnit activation rows, and each thread takes a contiguous
// range of units, so in decode (N = 1) each thread streams its own slice of
// the weights, and in prefill a block of weight rows stays in cache while
// the activation rows pass over it. Each unit is one call of the kernel
// table's tile kernel (gemm_tiles, quant/gemm.h), which shares activation
// loads across weight rows and weight unpacking across activation rows; types
// without one loop over vec_dot.
//
// Repacked weights (quant/repack.h): a weight the backend repacked at load
// (kTensorRepacked), and in prefill any weight whose type has a layout (its
// rows repacked 64 at a time into the thread's scratch: mul_mat_fly, and per
// expert in mul_mat_id), take activation rows carrying the extras their
// kernels read (block sums), go by whole groups of 8 rows, and run the
// table's gemm_repacked.
//
// mul_mat_id (MoE) groups the (slot, token) pairs by expert during the first
// phase (thread 0, a counting sort), so each chosen expert runs once over all
// of its rows and experts nobody chose are never touched.
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
#include "core/error.h"
#include "core/mmap.h"
#include "quant/kernels.h"
#include "quant/quant.h"
#include "quant/repack.h"

#ifdef MOELITE_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace moelite::cpu {
namespace {

constexpr int64_t kRowsPerUnit = 16;
constexpr int64_t kColsPerUnit = 64;
// mul_mat and mul_mat_id repack a unit of weight rows on the fly (quant/
// repack.h) for at least this many activation rows (mul_mat_id: of the
// unit's expert); mul_mat's units then have up to kFlyRows rows.
constexpr int32_t kRepackMinTokens = 4;
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

// Stride of one converted activation row in scratch.
size_t converted_row_stride(DType vdt, int64_t k) { return align_up(dtype_row_bytes(vdt, k)); }

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

// Stride of a converted activation row for weight w, with or without the
// extras of its repacked kernels (quant/repack.h).
size_t x_stride(const Tensor& w, bool extras) {
    if (extras) return align_up(repacked_x_row_bytes(w.type, w.ne[0]));
    return converted_row_stride(quant_traits(w.type)->vec_dot_type, w.ne[0]);
}

// Whether x rows can be used as they are (F32 weights' vec_dot_type is F32).
bool x_used_in_place(const Tensor& x, DType vdt) { return vdt == DType::F32 && x.nb[0] == sizeof(float); }

// Converts the x rows [r0, r1) (flattened over ne[1..3]) into dst rows of `stride` bytes.
// With `extras_for` set, each row gets the extras of that weight type's
// repacked kernels (quant/repack.h).
void convert_rows(const Tensor& x, int64_t r0, int64_t r1, FromFloatFn convert, char* dst, size_t stride,
                  float* gather, std::optional<DType> extras_for) {
    const int64_t k = x.ne[0];
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i1 = r % x.ne[1], i2 = (r / x.ne[1]) % x.ne[2], i3 = r / (x.ne[1] * x.ne[2]);
        const char* src = static_cast<const char*>(x.data) + i1 * x.nb[1] + i2 * x.nb[2] + i3 * x.nb[3];
        const float* row = reinterpret_cast<const float*>(src);
        if (x.nb[0] != sizeof(float)) {
            for (int64_t i = 0; i < k; ++i) std::memcpy(&gather[i], src + i * x.nb[0], 4);
            row = gather;
        }
        convert(row, dst + size_t(r) * stride, k);
        if (extras_for) repacked_x_finish(*extras_for, dst + size_t(r) * stride, k);
    }
}

// Activation row (i1, i2, i3) as the dot kernel wants it.
inline const void* x_row(const Tensor& x, bool in_place, const char* conv, size_t stride, int64_t i1, int64_t i2,
                         int64_t i3) {
    if (in_place) return static_cast<const char*>(x.data) + i1 * x.nb[1] + i2 * x.nb[2] + i3 * x.nb[3];
    return conv + size_t(i1 + x.ne[1] * (i2 + x.ne[2] * i3)) * stride;
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

WorkSize work_size_mul_mat(const Tensor& node, int nth, int64_t blas_min_cols) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
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
            repack_rows(w.type, K, whole, rows, w.nb[1], unit_rows);
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
                gemm_tiles(*ctx.kt, w.type, K, m_end - m0 - whole, n_end - n0, wb + (m0 + whole) * w.nb[1],
                           w.nb[1], x_rows, out_rows);
            }
        }
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
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const int64_t K = w.ne[0], M = w.ne[1], N = x.ne[1];
    const int64_t r2 = x.ne[2] / w.ne[2], r3 = x.ne[3] / w.ne[3];
    const DType vdt = quant_traits(w.type)->vec_dot_type;  // supports_mul_mat*() checked there is one
    const bool repacked = (w.flags & kTensorRepacked) != 0;
    const bool extras = x_with_extras(node);
    const bool in_place = x_used_in_place(x, vdt) && !extras;
    const size_t stride = x_stride(*node.src[0], x_with_extras(node));
    const bool fly = repacks_on_the_fly(node) && fast_repacked_gemm(*ctx.kt, w.type);
    char* unit_rows = ctx.thread_scratch() + align_up(sizeof(float) * size_t(K));

    if (!in_place) {
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

    int64_t u0, u1;
    split_range(n_batch * n_cblk * n_rblk, ctx.ith, ctx.nth, &u0, &u1);
    for (int64_t u = u0; u < u1; ++u) {
        const int64_t rb = u % n_rblk, cb = (u / n_rblk) % n_cblk, b = u / (n_rblk * n_cblk);
        const int64_t i2 = b % x.ne[2], i3 = b / x.ne[2];
        const char* wb = static_cast<const char*>(w.data) + (i2 / r2) * w.nb[2] + (i3 / r3) * w.nb[3];
        char* ob = static_cast<char*>(node.data) + i2 * node.nb[2] + i3 * node.nb[3];
        const int64_t m0 = rb * rows_per_unit, m_end = std::min(M, m0 + rows_per_unit);
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

// ---- mul_mat_id ------------------------------------------------------------

namespace {

// Shared scratch of mul_mat_id after the converted rows: per expert the
// start of its list (n_expert + 1 ints, the last is k * T), a fill cursor per
// expert, the lists (k * T ints, each an output row j + k * t), and the
// experts in use (a count, then n_expert ints).
struct MoeLayout {
    size_t conv_bytes, offsets_at, cursor_at, entries_at, active_at, total;
};

// Whether a batch's experts may be repacked on the fly (see op_mul_mat_id):
// the type has a repacked layout, there is more than one token, and the
// activation rows are converted (so they can carry the layout's extras).
bool moe_repacks(const Tensor& node) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    return node.src[2]->ne[1] > 1 && repack_supported(w.type, w.ne[0], kRepackRows) &&
           !x_used_in_place(x, quant_traits(w.type)->vec_dot_type);
}


MoeLayout moe_layout(const Tensor& node) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const Tensor& ids = *node.src[2];
    const DType vdt = quant_traits(w.type)->vec_dot_type;
    MoeLayout l;
    l.conv_bytes = x_used_in_place(x, vdt) ? 0 : x_stride(*node.src[0], moe_repacks(node)) * size_t(x.nrows());
    l.offsets_at = l.conv_bytes;
    l.cursor_at = l.offsets_at + align_up(sizeof(int32_t) * size_t(w.ne[2] + 1));
    l.entries_at = l.cursor_at + align_up(sizeof(int32_t) * size_t(w.ne[2]));
    l.active_at = l.entries_at + align_up(sizeof(int32_t) * size_t(ids.ne[0] * ids.ne[1]));
    l.total = l.active_at + align_up(sizeof(int32_t) * size_t(w.ne[2] + 1));
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

WorkSize work_size_mul_mat_id(const Tensor& node, int nth) {
    // Per thread: a gathered activation row, and a unit of repacked rows.
    const Tensor& w = *node.src[0];
    size_t per_thread = align_up(sizeof(float) * size_t(node.src[1]->ne[0]));
    if (moe_repacks(node)) per_thread += align_up(w.row_bytes() * size_t(kRowsPerUnit));
    return {moe_layout(node).total, per_thread};
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
    const size_t stride = x_stride(*node.src[0], moe_repacks(node));
    const MoeLayout l = moe_layout(node);
    int32_t* offsets = reinterpret_cast<int32_t*>(ctx.wdata + l.offsets_at);
    int32_t* cursor = reinterpret_cast<int32_t*>(ctx.wdata + l.cursor_at);
    int32_t* entries = reinterpret_cast<int32_t*>(ctx.wdata + l.entries_at);
    int32_t* active = reinterpret_cast<int32_t*>(ctx.wdata + l.active_at);

    if (!in_place) {
        int64_t r0, r1;
        split_range(x.nrows(), ctx.ith, ctx.nth, &r0, &r1);
        convert_rows(x, r0, r1, row_from_float(*ctx.kt, vdt), ctx.wdata, stride,
                     reinterpret_cast<float*>(ctx.thread_scratch()),
                     repacks ? std::optional<DType>(w.type) : std::nullopt);
    }
    auto expert_of = [&](int64_t j, int64_t t) {
        int32_t e;
        std::memcpy(&e, static_cast<const char*>(ids.data) + j * ids.nb[0] + t * ids.nb[1], 4);
        return e;
    };
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
    }
    ctx.barrier();

    // Units: (expert in use, block of kRowsPerUnit weight rows), each over all of the expert's rows.
    // A unit whose expert has at least kRepackMinTokens rows of the batch is
    // first repacked into the thread's scratch (quant/repack.h): the
    // interleaved kernel then runs over all of them, and the byte shuffle,
    // once per unit, costs a few percent of that. The experts stay in the
    // mapped file untouched.
    const GemmFn repacked_gemm = repacks ? fast_repacked_gemm(*ctx.kt, w.type) : nullptr;
    char* unit_rows = ctx.thread_scratch() + align_up(sizeof(float) * size_t(K));
    const int32_t n_active = active[0];
    const int64_t n_rblk = (M + kRowsPerUnit - 1) / kRowsPerUnit;
    int64_t u0, u1;
    split_range(int64_t(n_active) * n_rblk, ctx.ith, ctx.nth, &u0, &u1);
    for (int64_t u = u0; u < u1; ++u) {
        const int32_t e = active[1 + u / n_rblk];
        const int64_t rb = u % n_rblk;
        const int32_t begin = offsets[e], end = offsets[e + 1];
        const char* wb = static_cast<const char*>(w.data) + e * w.nb[2];
        const int64_t m0 = rb * kRowsPerUnit, m_end = std::min(M, m0 + kRowsPerUnit);
        const bool repack_unit =
            repacked_gemm && end - begin >= kRepackMinTokens && (m_end - m0) % kRepackRows == 0;
        if (repack_unit) repack_rows(w.type, K, m_end - m0, wb + m0 * w.nb[1], w.nb[1], unit_rows);
        // The expert's rows in chunks of kColsPerUnit, each one tile call.
        const void* x_rows[kColsPerUnit];
        float* out_rows[kColsPerUnit];
        for (int32_t q0 = begin; q0 < end; q0 += int32_t(kColsPerUnit)) {
            const int32_t q1 = std::min<int32_t>(end, q0 + int32_t(kColsPerUnit));
            for (int32_t q = q0; q < q1; ++q) {
                const int64_t j = entries[q] % k, t = entries[q] / k;
                x_rows[q - q0] = x_row(x, in_place, ctx.wdata, stride, j % nx, t, 0);
                out_rows[q - q0] =
                    reinterpret_cast<float*>(static_cast<char*>(node.data) + j * node.nb[1] + t * node.nb[2]) + m0;
            }
            if (repack_unit) {
                repacked_gemm(K, m_end - m0, q1 - q0, unit_rows, w.row_bytes(), x_rows, out_rows);
            } else {
                gemm_tiles(*ctx.kt, w.type, K, m_end - m0, q1 - q0, wb + m0 * w.nb[1], w.nb[1], x_rows, out_rows);
            }
        }
    }
}

}  // namespace moelite::cpu
