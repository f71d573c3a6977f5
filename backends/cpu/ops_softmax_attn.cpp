// soft_max (scale, optional mask), argsort_top_k and flash_attn. Semantics in
// core/graph.h.
//
// A row whose every entry is masked (-inf) has no softmax; it comes out as
// zeros (soft_max) or a zero vector (flash_attn) rather than NaN.
//
// flash_attn goes by blocks of queries and keys with the online softmax
// (Milakov & Gimelshein 2018): per query row a running max M, sum S and
// weighted value sum; a block whose maximum exceeds M rescales S and the sum
// by exp(M - max). Query rows are rounded to the key type's vec_dot_type and
// back (as mul_mat rounds activations). The heads of one KV head (GQA; MLA,
// where every head reads one latent cache) go together, so each key and value
// row is converted once for all of them; decode splits the keys between the
// threads instead of the rows (see AttnPlan).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/ops.h"
#include "core/error.h"
#include "core/fp16.h"
#include "quant/quant.h"

namespace moelite::cpu {
namespace {

inline float load_f32(const char* p) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
}

// Element i of a mask row of type F32 or F16.
inline float mask_value(const Tensor& mask, const char* row, int64_t i) {
    if (mask.type == DType::F16) {
        uint16_t h;
        std::memcpy(&h, row + i * mask.nb[0], 2);
        return fp16_to_fp32(h);
    }
    return load_f32(row + i * mask.nb[0]);
}

}  // namespace

void op_soft_max(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    const Tensor* mask = node.src[1];
    const float scale = soft_max_scale(node);
    const int64_t n = node.ne[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i1 = r % node.ne[1], i2 = (r / node.ne[1]) % node.ne[2], i3 = r / (node.ne[1] * node.ne[2]);
        const char* src = static_cast<const char*>(a.data) + i1 * a.nb[1] + i2 * a.nb[2] + i3 * a.nb[3];
        float* dst = reinterpret_cast<float*>(static_cast<char*>(node.data) + i1 * node.nb[1] + i2 * node.nb[2] +
                                              i3 * node.nb[3]);
        const char* mrow = nullptr;
        if (mask)
            mrow = static_cast<const char*>(mask->data) + i1 * mask->nb[1] + (i2 % mask->ne[2]) * mask->nb[2] +
                   (i3 % mask->ne[3]) * mask->nb[3];
        float max = -std::numeric_limits<float>::infinity();
        bool nan = false;
        for (int64_t i = 0; i < n; ++i) {
            float v = load_f32(src + i * a.nb[0]) * scale;
            if (mrow) v += mask_value(*mask, mrow, i);
            dst[i] = v;
            max = std::max(max, v);
            nan = nan || std::isnan(v);
        }
        if (nan || max == -std::numeric_limits<float>::infinity()) {
            // A NaN input makes the row NaN; a row masked out entirely is zeros.
            std::fill(dst, dst + n, nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
            continue;
        }
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            dst[i] = std::exp(dst[i] - max);
            sum += dst[i];
        }
        const float inv = float(1.0 / sum);
        for (int64_t i = 0; i < n; ++i) dst[i] *= inv;
    }
}

WorkSize work_size_argsort_top_k(const Tensor& node) {
    // indices, then the group scores and group order of top_k_grouped
    return {0, align_up(sizeof(int32_t) * size_t(node.src[0]->ne[0]) * 3 + 64)};
}

void op_argsort_top_k(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    const int64_t n = a.ne[0], k = node.ne[0];
    const int64_t n_group = std::max(top_k_groups(node), 1), kept = top_k_groups_kept(node),
                  score_n = top_k_group_score_n(node);
    int32_t* idx = reinterpret_cast<int32_t*>(ctx.thread_scratch());
    float* group_score = reinterpret_cast<float*>(idx + n);
    int32_t* group_order = reinterpret_cast<int32_t*>(group_score + n_group);
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i1 = r % node.ne[1], i2 = (r / node.ne[1]) % node.ne[2], i3 = r / (node.ne[1] * node.ne[2]);
        const char* src = static_cast<const char*>(a.data) + i1 * a.nb[1] + i2 * a.nb[2] + i3 * a.nb[3];
        auto value = [&](int32_t i) { return load_f32(src + i * a.nb[0]); };
        // Largest first, ties by lower index; NaN sorts after every number.
        auto before = [&](int32_t x, int32_t y) {
            const float vx = value(x), vy = value(y);
            const bool nx = std::isnan(vx), ny = std::isnan(vy);
            if (nx || ny) return nx == ny ? x < y : ny;
            if (vx != vy) return vx > vy;
            return x < y;
        };
        int64_t m = n;  // candidates in idx[0, m)
        for (int64_t i = 0; i < n; ++i) idx[i] = int32_t(i);
        if (n_group > 1) {
            // Score each group by the sum of its `score_n` largest entries, keep
            // the best `kept` groups, and choose among their entries only.
            const int64_t per = n / n_group;
            for (int64_t g = 0; g < n_group; ++g) {
                std::partial_sort(idx + g * per, idx + g * per + score_n, idx + (g + 1) * per, before);
                double s = 0;
                for (int64_t j = 0; j < score_n; ++j) s += value(idx[g * per + j]);
                group_score[g] = float(s);
            }
            for (int64_t g = 0; g < n_group; ++g) group_order[g] = int32_t(g);
            std::partial_sort(group_order, group_order + kept, group_order + n_group, [&](int32_t x, int32_t y) {
                return group_score[x] > group_score[y] || (group_score[x] == group_score[y] && x < y);
            });
            m = 0;
            for (int64_t gi = 0; gi < kept; ++gi)
                for (int64_t j = 0; j < per; ++j) idx[m++] = int32_t(group_order[gi] * per + j);
        }
        std::partial_sort(idx, idx + k, idx + m, before);
        int32_t* dst = reinterpret_cast<int32_t*>(static_cast<char*>(node.data) + i1 * node.nb[1] +
                                                  i2 * node.nb[2] + i3 * node.nb[3]);
        std::memcpy(dst, idx, sizeof(int32_t) * size_t(k));
    }
}

bool supports_flash_attn(const Tensor& node) {
    const Tensor* q = node.src[0];
    const Tensor* k = node.src[1];
    const Tensor* v = node.src[2];
    const Tensor* mask = node.src[3];
    if (!q || !k || !v || node.type != DType::F32 || q->type != DType::F32) return false;
    for (const Tensor* t : {k, v}) {
        if (t->type != DType::F32 && t->type != DType::F16 && t->type != DType::Q8_0) return false;
        if (!t->rows_contiguous() || !row_to_float(t->type)) return false;
    }
    const QuantTraits* key_traits = quant_traits(k->type);
    if (!key_traits || !row_from_float(kernels(), key_traits->vec_dot_type) || !row_to_float(key_traits->vec_dot_type))
        return false;
    if (k->ne[0] != q->ne[0] || v->ne[1] != k->ne[1] || v->ne[2] != k->ne[2]) return false;
    if (k->ne[2] == 0 || q->ne[1] % k->ne[2] != 0 || q->ne[3] != 1 || k->ne[3] != 1 || v->ne[3] != 1) return false;
    if (node.ne[0] != v->ne[0] || node.ne[1] != q->ne[1] || node.ne[2] != q->ne[2] || node.ne[3] != q->ne[3])
        return false;
    if (mask) {
        if (mask->type != DType::F32 && mask->type != DType::F16) return false;
        if (mask->ne[0] != k->ne[1] || mask->ne[1] < q->ne[2]) return false;
        if (mask->ne[2] != 1 || mask->ne[3] != 1) return false;  // one mask for every head
    }
    return true;
}

namespace {

// flash_attn's operands and sizes (core/graph.h: q [D, heads, T], k [D, n_kv,
// kv_heads], v [Dv, n_kv, kv_heads], an optional mask [n_kv, >= T]).
struct AttnOperands {
    const Tensor &q, &k, &v;
    const Tensor* mask;
    float scale;
    int64_t D, Dv, n_kv, T, kv_heads, group;
    explicit AttnOperands(const Tensor& node)
        : q(*node.src[0]), k(*node.src[1]), v(*node.src[2]), mask(node.src[3]), scale(flash_attn_scale(node)),
          D(q.ne[0]), Dv(v.ne[0]), n_kv(k.ne[1]), T(q.ne[2]), kv_heads(k.ne[2]), group(q.ne[1] / kv_heads) {}
};

// Each unit takes up to kBlockRows query rows (queries times heads of one KV
// group), and each block of keys, transposed and converted to floats once,
// meets all of them through the table's blocked-attention kernels (scores,
// exp, accumulate: small matrix products instead of one dot product and one
// scaled add per query and key).
constexpr int64_t kBlockRows = 32;

// Keys are converted and transposed this many at a time (8 rows of floats,
// then 8 consecutive floats per line of the transposed block).
constexpr int64_t kTransposeKeys = 8;

// Per-thread scratch: the unit's query rows as floats, its running sums, the
// keys of a block transposed, the values of a block, the scores, the running
// max and sum of each row, a converted query row, the mask of the block for
// each query, and kTransposeKeys float rows.
struct BlockedScratch {
    int64_t keys;  // per block
    size_t q_at, acc_at, kt_at, v_at, s_at, max_at, sum_at, conv_at, mask_at, row_at, total;
};

BlockedScratch blocked_scratch(const Tensor& node) {
    const int64_t D = node.src[0]->ne[0], Dv = node.src[2]->ne[0];
    const DType vdt = quant_traits(node.src[1]->type)->vec_dot_type;
    auto floats = [](int64_t n) { return align_up(sizeof(float) * size_t(n)); };
    BlockedScratch l;
    l.keys = D + Dv > 512 ? 32 : 64;  // a block's keys and values stay in L2 with MLA's 576 + 512
    l.q_at = 0;
    l.acc_at = l.q_at + floats(kBlockRows * D);
    l.kt_at = l.acc_at + floats(kBlockRows * Dv);
    l.v_at = l.kt_at + floats(D * l.keys);
    l.s_at = l.v_at + floats(l.keys * Dv);
    l.max_at = l.s_at + floats(kBlockRows * l.keys);
    l.sum_at = l.max_at + floats(kBlockRows);
    l.conv_at = l.sum_at + floats(kBlockRows);
    l.mask_at = l.conv_at + align_up(dtype_row_bytes(vdt, D));
    l.row_at = l.mask_at + floats(kBlockRows * l.keys);
    l.total = l.row_at + floats(kTransposeKeys * std::max(D, Dv));
    return l;
}

// The units: (block of queries, KV head, block of its heads, chunk of keys),
// unit u = row group g * key_chunks + chunk. Prefill has enough row groups to
// keep every thread busy and takes all keys in one chunk; decode (one query,
// a few KV heads, often a single latent one with MLA) splits the keys into
// one chunk per thread, and the chunks' partial sums are merged after a
// barrier (split-K, as flash-decoding does).
struct AttnPlan {
    int64_t heads, queries, head_blocks, groups, key_chunks, chunk_keys, n_units;
    size_t partial_floats;  // per unit, with key chunks: kBlockRows rows of [max, sum, Dv sums]
};

AttnPlan attn_plan(const AttnOperands& a, int nth, int64_t block_keys) {
    AttnPlan p;
    p.heads = std::min(a.group, kBlockRows);
    p.queries = std::max<int64_t>(1, kBlockRows / p.heads);
    p.head_blocks = (a.group + p.heads - 1) / p.heads;
    while (p.queries > 1 && a.kv_heads * p.head_blocks * ((a.T + p.queries - 1) / p.queries) < 4 * nth) p.queries /= 2;
    p.groups = a.kv_heads * p.head_blocks * ((a.T + p.queries - 1) / p.queries);
    const int64_t key_blocks = std::max<int64_t>(1, (a.n_kv + block_keys - 1) / block_keys);
    p.key_chunks = p.groups < nth ? std::min<int64_t>(nth, key_blocks) : 1;
    p.chunk_keys = (key_blocks + p.key_chunks - 1) / p.key_chunks * block_keys;
    p.n_units = p.groups * p.key_chunks;
    p.partial_floats = p.key_chunks > 1 ? size_t(kBlockRows * (2 + a.Dv)) : 0;
    return p;
}

}  // namespace

WorkSize work_size_flash_attn(const Tensor& node, int nth) {
    const AttnOperands a(node);
    const BlockedScratch l = blocked_scratch(node);
    const AttnPlan p = attn_plan(a, nth, l.keys);
    return {align_up(sizeof(float) * p.partial_floats * size_t(p.n_units)), l.total};
}

void op_flash_attn(const Tensor& node, const OpContext& ctx) {
    const AttnOperands a(node);
    const Tensor &q = a.q, &k = a.k, &v = a.v;
    const Tensor* mask = a.mask;
    const float scale = a.scale;
    const int64_t D = a.D, Dv = a.Dv, n_kv = a.n_kv, T = a.T, kv_heads = a.kv_heads, group = a.group;
    const KernelTable& kt = *ctx.kt;
    const DType vdt = quant_traits(k.type)->vec_dot_type;
    const FromFloatFn convert_q = row_from_float(kt, vdt);
    const ToFloatFn q_to_float = row_to_float(kt, vdt), k_to_float = row_to_float(kt, k.type);
    const ToFloatFn v_to_float = row_to_float(kt, v.type);

    const BlockedScratch l = blocked_scratch(node);
    const AttnPlan p = attn_plan(a, ctx.nth, l.keys);
    char* scratch = ctx.thread_scratch();
    float* qf = reinterpret_cast<float*>(scratch + l.q_at);
    float* acc = reinterpret_cast<float*>(scratch + l.acc_at);
    float* keys_t = reinterpret_cast<float*>(scratch + l.kt_at);
    float* values = reinterpret_cast<float*>(scratch + l.v_at);
    float* scores = reinterpret_cast<float*>(scratch + l.s_at);
    float* row_max = reinterpret_cast<float*>(scratch + l.max_at);
    float* row_sum = reinterpret_cast<float*>(scratch + l.sum_at);
    char* conv = scratch + l.conv_at;
    float* row = reinterpret_cast<float*>(scratch + l.row_at);
    float* block_mask = reinterpret_cast<float*>(scratch + l.mask_at);  // [query of the unit][key of the block]
    float* partials = reinterpret_cast<float*>(ctx.wdata);              // with key chunks, one slot per unit

    // The rows of row group g: rows r = query t0 + r / nh, head h0 + r % nh.
    struct Rows {
        int64_t kvh, h0, nh, t0, nt;
    };
    auto rows_of = [&](int64_t g) {
        const int64_t hb = g % p.head_blocks, kvh = (g / p.head_blocks) % kv_heads, qb = g / (p.head_blocks * kv_heads);
        const int64_t h0 = kvh * group + hb * p.heads, t0 = qb * p.queries;
        return Rows{kvh, h0, std::min(p.heads, (kvh + 1) * group - h0), t0, std::min(p.queries, T - t0)};
    };
    auto out_row = [&](const Rows& w, int64_t r) {
        return reinterpret_cast<float*>(static_cast<char*>(node.data) + (w.h0 + r % w.nh) * node.nb[1] +
                                        (w.t0 + r / w.nh) * node.nb[2]);
    };

    // Units dealt out in turn, so that the long rows of a causal mask's last
    // queries are shared, and each thread takes its own chunk of every group.
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    for (int64_t u = ctx.ith; u < p.n_units; u += ctx.nth) {
        const Rows w = rows_of(u / p.key_chunks);
        const int64_t kvh = w.kvh, nh = w.nh, t0 = w.t0, nt = w.nt;
        const int64_t rows = nh * nt;
        const int64_t key_begin = (u % p.key_chunks) * p.chunk_keys, key_end = std::min(n_kv, key_begin + p.chunk_keys);
        for (int64_t r = 0; r < rows; ++r) {
            const char* qp = static_cast<const char*>(q.data) + (w.h0 + r % nh) * q.nb[1] + (t0 + r / nh) * q.nb[2];
            for (int64_t i = 0; i < D; ++i) row[i] = load_f32(qp + i * q.nb[0]);
            // Rounded as mul_mat rounds activations for weights of the key's type.
            convert_q(row, conv, D);
            q_to_float(conv, qf + r * D, D);
            row_max[r] = kNegInf;
            row_sum[r] = 0.0f;
        }
        std::fill(acc, acc + rows * Dv, 0.0f);

        for (int64_t j0 = key_begin; j0 < key_end; j0 += l.keys) {
            const int64_t nj = std::min(l.keys, key_end - j0);
            if (mask) {  // read once per block; a block every query of the unit masks out is skipped
                bool any = false;
                for (int64_t ti = 0; ti < nt; ++ti) {
                    const char* mrow = static_cast<const char*>(mask->data) + (t0 + ti) * mask->nb[1];
                    for (int64_t j = 0; j < nj; ++j) {
                        block_mask[ti * l.keys + j] = mask_value(*mask, mrow, j0 + j);
                        any = any || block_mask[ti * l.keys + j] != kNegInf;
                    }
                }
                if (!any) continue;
            }
            for (int64_t j = 0; j < nj; j += kTransposeKeys) {
                const int64_t n8 = std::min(kTransposeKeys, nj - j);
                for (int64_t jj = 0; jj < n8; ++jj)
                    k_to_float(static_cast<const char*>(k.data) + (j0 + j + jj) * k.nb[1] + kvh * k.nb[2], row + jj * D,
                               D);
                kt.transpose32(D, n8, row, size_t(D), keys_t + j, size_t(l.keys));
            }
            for (int64_t j = 0; j < nj; ++j)
                v_to_float(static_cast<const char*>(v.data) + (j0 + j) * v.nb[1] + kvh * v.nb[2], values + j * Dv, Dv);
            kt.attn_scores(rows, nj, D, qf, size_t(D), keys_t, size_t(l.keys), scores, size_t(l.keys));
            // Online softmax over the block: a new maximum rescales what was summed so far.
            for (int64_t r = 0; r < rows; ++r) {
                float* s = scores + r * l.keys;
                const float* mv = mask ? block_mask + (r / nh) * l.keys : nullptr;
                float block_max = kNegInf;
                bool nan = false;
                for (int64_t j = 0; j < nj; ++j) {
                    s[j] = !mv ? s[j] * scale : mv[j] == kNegInf ? kNegInf : s[j] * scale + mv[j];
                    block_max = std::max(block_max, s[j]);
                    nan = nan || std::isnan(s[j]);
                }
                if (nan || std::isnan(row_max[r])) {
                    // A NaN score (NaN or infinite q or k) makes the row NaN, as
                    // the softmax would, rather than look masked out.
                    row_max[r] = row_sum[r] = std::numeric_limits<float>::quiet_NaN();
                    std::fill(acc + r * Dv, acc + (r + 1) * Dv, row_max[r]);
                    std::fill(s, s + nj, 0.0f);
                    continue;
                }
                if (block_max == kNegInf) {
                    std::fill(s, s + nj, 0.0f);
                    continue;
                }
                const float m = std::max(row_max[r], block_max);
                if (m != row_max[r]) {
                    const float shrink = row_max[r] == kNegInf ? 0.0f : std::exp(row_max[r] - m);
                    for (int64_t c = 0; c < Dv; ++c) acc[r * Dv + c] *= shrink;
                    row_sum[r] *= shrink;
                    row_max[r] = m;
                }
                row_sum[r] += kt.exp_sub(nj, s, m);
            }
            kt.attn_accumulate(rows, nj, Dv, scores, size_t(l.keys), values, size_t(Dv), acc, size_t(Dv));
        }
        if (p.key_chunks > 1) {  // the chunk's partial sums, merged below
            float* slot = partials + size_t(u) * p.partial_floats;
            for (int64_t r = 0; r < rows; ++r) {
                float* pr = slot + r * (2 + Dv);
                pr[0] = row_max[r];
                pr[1] = row_sum[r];
                std::memcpy(pr + 2, acc + r * Dv, sizeof(float) * size_t(Dv));
            }
            continue;
        }
        for (int64_t r = 0; r < rows; ++r) {
            float* dst = out_row(w, r);
            const float inv = row_sum[r] > 0.0f ? 1.0f / row_sum[r] : 0.0f;
            for (int64_t c = 0; c < Dv; ++c) dst[c] = acc[r * Dv + c] * inv;
        }
    }
    if (p.key_chunks == 1) return;

    // Merge: each row's chunks rescaled to their common maximum. The rows of
    // all groups are split between the threads; a row no chunk saw a key of
    // stays zero.
    ctx.barrier();
    auto rows_in = [&](int64_t g) {
        const Rows w = rows_of(g);
        return w.nh * w.nt;
    };
    int64_t total_rows = 0;
    for (int64_t g = 0; g < p.groups; ++g) total_rows += rows_in(g);
    int64_t r0, r1;
    split_range(total_rows, ctx.ith, ctx.nth, &r0, &r1);
    int64_t g = 0, g_first = 0;  // the group of the current row, and that group's first row
    for (int64_t gr = r0; gr < r1; ++gr) {
        while (gr >= g_first + rows_in(g)) {
            g_first += rows_in(g);
            ++g;
        }
        const int64_t r = gr - g_first;
        const Rows w = rows_of(g);
        const float* first = partials + size_t(g * p.key_chunks) * p.partial_floats + r * (2 + Dv);
        float m = kNegInf;
        bool nan = false;
        for (int64_t c = 0; c < p.key_chunks; ++c) {
            m = std::max(m, first[c * p.partial_floats]);
            nan = nan || std::isnan(first[c * p.partial_floats]);
        }
        float* dst = out_row(w, r);
        std::fill(dst, dst + Dv, nan ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
        if (nan || m == kNegInf) continue;
        float sum = 0.0f;
        for (int64_t c = 0; c < p.key_chunks; ++c) {
            const float* pc = first + c * p.partial_floats;
            if (pc[0] == kNegInf) continue;
            const float f = std::exp(pc[0] - m);
            sum += f * pc[1];
            kt.scale_add(Dv, dst, 1.0f, pc + 2, f);
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int64_t c = 0; c < Dv; ++c) dst[c] *= inv;
    }
}

}  // namespace moelite::cpu
