// The table of backend op cases (see backend_ops_harness.h): for each op, the
// types it takes and shapes chosen to be awkward: odd row counts, ne[0] not a
// power of two (a multiple of the block size for quantized types), single
// rows, views that are permuted, transposed or strided, broadcasts over dims
// 1-3, GQA ratios, masks with -inf and fully masked rows, and mat-mul sizes
// on both sides of the CPU's BLAS threshold.
//
// Tolerances (NMSE against the double-precision reference):
//   1e-10  float ops computed in F32 (elementwise, norms, rope, softmax, copies)
//   1e-9   F32 dot products (mul_mat, flash_attn with F32 K)
//   1e-6 / 1e-5  F16 / BF16 weights: the reference rounds the activations to
//          the weight type as the vec_dot path does; the BLAS path keeps them
//          F32, which differs by the rounding of x alone (2^-11 / 2^-8 relative)
//   2e-5   quantized weights or keys: the reference quantizes activations with
//          the scalar from_float; a SIMD quantize_row may round a rare tie the
//          other way, each such element costing ~1e-5 of relative error.
//   0      argsort_top_k (indices must match exactly)
#include <cmath>
#include <string>

#include "core/error.h"
#include "quant/quant.h"
#include "tests/backend_ops_harness.h"

namespace moelite::test {
namespace {

constexpr double kExact = 1e-10;
constexpr double kDotF32 = 1e-9;
constexpr double kDotF16 = 1e-6;
constexpr double kDotBF16 = 1e-5;
constexpr double kDotQuant = 2e-5;

std::string tname(DType t) { return dtype_name(t); }

// Types a weight can have here: a reference dot product, dequantization, and a
// quantizer for its activation type.
std::vector<DType> weight_types() {
    std::vector<DType> out;
    for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
        const auto type = dtype_from_id(id);
        if (!type) continue;
        const QuantTraits* q = quant_traits(*type);
        if (!q || !q->vec_dot || !q->to_float) continue;
        const QuantTraits* a = quant_traits(q->vec_dot_type);
        if (!a || !a->from_float || !a->to_float) continue;
        out.push_back(*type);
    }
    return out;
}

double dot_tolerance(DType w) {
    if (w == DType::F32) return kDotF32;
    if (w == DType::F16) return kDotF16;
    if (w == DType::BF16) return kDotBF16;
    return kDotQuant;
}

// A row length for `type` that is a multiple of its block size, and of the
// activation type's, but not a power of two.
int64_t odd_row(DType type, int64_t plain) {
    const QuantTraits* q = quant_traits(type);
    int64_t bs = dtype_block_size(type);
    if (q) bs = std::max(bs, dtype_block_size(q->vec_dot_type));
    return bs == 1 ? plain : 3 * bs;
}

void add_mul_mat(std::vector<OpCase>& cases) {
    for (DType w : weight_types()) {
        const int64_t K = odd_row(w, 67);
        const std::string t = tname(w);
        const double tol = dot_tolerance(w);
        struct Shape {
            int64_t M, N;
        };
        // The last two have enough units of 16 rows (ops_matmul.cpp) for whole
        // tiles of the tile kernels (quant/gemm.h), with ragged edges in M and N.
        for (Shape s : {Shape{7, 1}, Shape{33, 5}, Shape{16, 40}, Shape{262, 1}, Shape{134, 67}}) {
            cases.push_back({"mul_mat " + t + " M" + std::to_string(s.M) + " N" + std::to_string(s.N), tol,
                             [=](OpCaseBuilder& b) {
                                 return b.graph().mul_mat(b.input(w, {K, s.M}), b.input(DType::F32, {K, s.N}));
                             }});
        }
        cases.push_back({"mul_mat " + t + " broadcast dims 2,3", tol, [=](OpCaseBuilder& b) {
                             return b.graph().mul_mat(b.input(w, {K, 9, 2, 1}), b.input(DType::F32, {K, 3, 4, 3}));
                         }});
        // One activation row per batch (decode, as attention without
        // flash_attn): runs of row units end at each batch's last row.
        cases.push_back({"mul_mat " + t + " broadcast dims 2,3, N1", tol, [=](OpCaseBuilder& b) {
                             return b.graph().mul_mat(b.input(w, {K, 40, 2, 1}), b.input(DType::F32, {K, 1, 2, 3}));
                         }});
        cases.push_back({"mul_mat " + t + " broadcast dims 2,3, N33", tol, [=](OpCaseBuilder& b) {
                             return b.graph().mul_mat(b.input(w, {K, 40, 2, 1}), b.input(DType::F32, {K, 33, 2, 3}));
                         }});
        cases.push_back({"mul_mat " + t + " w permuted (a cache view)", tol, [=](OpCaseBuilder& b) {
                             // Attention scores without flash_attn: K cache [K, heads, n_kv] read per head.
                             Tensor* w3 = b.graph().permute(b.input(w, {K, 3, 13}), 0, 2, 1, 3);
                             return b.graph().mul_mat(w3, b.input(DType::F32, {K, 5, 3}));
                         }});
        cases.push_back({"mul_mat " + t + " x transposed", tol, [=](OpCaseBuilder& b) {
                             Tensor* x = b.graph().transpose(b.input(DType::F32, {6, K}));
                             return b.graph().mul_mat(b.input(w, {K, 5}), x);
                         }});
        // As a model weight, which the backend may repack (quant/repack.h):
        // whole groups of 8 rows, decode and prefill, a strided x.
        for (Shape s : {Shape{8, 1}, Shape{40, 3}, Shape{136, 67}}) {
            cases.push_back({"mul_mat " + t + " weight M" + std::to_string(s.M) + " N" + std::to_string(s.N), tol,
                             [=](OpCaseBuilder& b) {
                                 return b.graph().mul_mat(b.weight(w, {K, s.M}), b.input(DType::F32, {K, s.N}));
                             }});
        }
        cases.push_back({"mul_mat " + t + " weight, x strided rows", tol, [=](OpCaseBuilder& b) {
                             Tensor* big = b.input(DType::F32, {K + 32, 9});
                             Tensor* x = b.graph().view(big, {K, 9}, {big->nb[1]}, 16 * sizeof(float));
                             return b.graph().mul_mat(b.weight(w, {K, 24}), x);
                         }});
        for (int64_t N : {3, 35}) {
            cases.push_back({"mul_mat " + t + " x strided rows N" + std::to_string(N), tol, [=](OpCaseBuilder& b) {
                                 Tensor* big = b.input(DType::F32, {K + 32, N});
                                 Tensor* x = b.graph().view(big, {K, N}, {big->nb[1]}, 16 * sizeof(float));
                                 return b.graph().mul_mat(b.input(w, {K, 11}), x);
                             }});
        }
    }
}

void add_mul_mat_id(std::vector<OpCase>& cases) {
    for (DType w : weight_types()) {
        const int64_t K = odd_row(w, 67);
        const std::string t = tname(w);
        const double tol = dot_tolerance(w);
        struct Shape {
            int64_t M, E, k, T, nx;
        };
        for (Shape s : {Shape{9, 6, 2, 1, 1}, Shape{9, 6, 3, 5, 3}, Shape{17, 8, 2, 33, 1}, Shape{5, 4, 4, 3, 4},
                        Shape{38, 4, 2, 70, 1}, Shape{45, 6, 3, 40, 3}}) {
            const std::string name = "mul_mat_id " + t + " M" + std::to_string(s.M) + " E" + std::to_string(s.E) +
                                     " k" + std::to_string(s.k) + " T" + std::to_string(s.T) + " nx" +
                                     std::to_string(s.nx);
            cases.push_back({name, tol, [=](OpCaseBuilder& b) {
                                 return b.graph().mul_mat_id(b.input(w, {K, s.M, s.E}),
                                                             b.input(DType::F32, {K, s.nx, s.T}),
                                                             b.distinct_ids(s.k, s.T, int32_t(s.E)));
                             }});
        }
    }
}

void add_get_rows(std::vector<OpCase>& cases) {
    for (DType type : weight_types()) {
        const int64_t n = odd_row(type, 67);
        cases.push_back({"get_rows " + tname(type), kExact, [=](OpCaseBuilder& b) {
                             return b.graph().get_rows(b.input(type, {n, 11}), b.ids({5}, 0, 11));
                         }});
        cases.push_back({"get_rows " + tname(type) + " batched", kExact, [=](OpCaseBuilder& b) {
                             return b.graph().get_rows(b.input(type, {n, 7, 2}), b.ids({4, 2}, 0, 7));
                         }});
    }
}

void add_elementwise(std::vector<OpCase>& cases) {
    struct Bcast {
        const char* name;
        int64_t b[4];
    };
    for (Bcast bc : {Bcast{"same", {13, 6, 4, 2}}, Bcast{"dim1,3", {13, 1, 4, 1}}, Bcast{"dim0,2", {1, 6, 1, 2}},
                     Bcast{"row", {13, 1, 1, 1}}, Bcast{"scalar", {1, 1, 1, 1}}}) {
        for (int op = 0; op < 2; ++op) {
            cases.push_back({std::string(op ? "mul " : "add ") + bc.name, kExact, [=](OpCaseBuilder& b) {
                                 Tensor* a = b.input(DType::F32, {13, 6, 4, 2});
                                 Tensor* y = b.input(DType::F32, {bc.b[0], bc.b[1], bc.b[2], bc.b[3]});
                                 return op ? b.graph().mul(a, y) : b.graph().add(a, y);
                             }});
        }
    }
    cases.push_back({"add a transposed, b strided view", kExact, [](OpCaseBuilder& b) {
                         Tensor* a = b.graph().transpose(b.input(DType::F32, {6, 13, 4}));
                         Tensor* big = b.input(DType::F32, {20, 6});
                         Tensor* y = b.graph().view(big, {13, 6}, {big->nb[1]}, 4 * sizeof(float));
                         return b.graph().add(a, y);
                     }});
    cases.push_back({"mul a transposed, b one per row", kExact, [](OpCaseBuilder& b) {
                         Tensor* a = b.graph().transpose(b.input(DType::F32, {6, 13, 4}));
                         return b.graph().mul(a, b.input(DType::F32, {1, 6, 4}));
                     }});
    cases.push_back({"scale", kExact, [](OpCaseBuilder& b) {
                         return b.graph().scale(b.input(DType::F32, {67, 3, 2}), 0.7f, -0.2f);
                     }});
    cases.push_back({"scale transposed", kExact, [](OpCaseBuilder& b) {
                         return b.graph().scale(b.graph().transpose(b.input(DType::F32, {5, 67})), -1.5f);
                     }});
    cases.push_back({"silu", kExact, [](OpCaseBuilder& b) {
                         return b.graph().silu(b.input(DType::F32, {67, 3, 2}, 10.0f));
                     }});
    cases.push_back({"sigmoid", kExact, [](OpCaseBuilder& b) {
                         return b.graph().sigmoid(b.input(DType::F32, {67, 3, 2}, 10.0f));
                     }});
    cases.push_back({"silu transposed", kExact, [](OpCaseBuilder& b) {
                         return b.graph().silu(b.graph().transpose(b.input(DType::F32, {3, 67})));
                     }});
    cases.push_back({"swiglu", kExact, [](OpCaseBuilder& b) {
                         return b.graph().swiglu(b.input(DType::F32, {67, 3, 2}, 3.0f), b.input(DType::F32, {67, 3, 2}));
                     }});
    cases.push_back({"swiglu transposed", kExact, [](OpCaseBuilder& b) {  // strided rows: not the row kernel
                         return b.graph().swiglu(b.graph().transpose(b.input(DType::F32, {3, 67}, 3.0f)),
                                                 b.graph().transpose(b.input(DType::F32, {3, 67})));
                     }});
    cases.push_back({"rms_norm", kExact, [](OpCaseBuilder& b) {
                         return b.graph().rms_norm(b.input(DType::F32, {129, 5, 3}, 4.0f), 1e-6f);
                     }});
    cases.push_back({"rms_norm one long row", kExact, [](OpCaseBuilder& b) {
                         return b.graph().rms_norm(b.input(DType::F32, {4096}), 1e-5f);
                     }});
    cases.push_back({"rms_norm transposed", kExact, [](OpCaseBuilder& b) {
                         return b.graph().rms_norm(b.graph().transpose(b.input(DType::F32, {7, 33})), 1e-6f);
                     }});
}

void add_rope(std::vector<OpCase>& cases) {
    struct Variant {
        const char* name;
        RopeMode mode;
        int n_dims;
        bool freq_factors, yarn, as_view;
    };
    const Variant variants[] = {
        {"normal", RopeMode::Normal, 64, false, false, false},
        {"neox", RopeMode::Neox, 64, false, false, false},
        {"normal partial", RopeMode::Normal, 32, false, false, false},
        {"neox partial freq_factors", RopeMode::Neox, 48, true, false, false},
        {"normal yarn", RopeMode::Normal, 64, false, true, false},
        {"neox yarn freq_factors", RopeMode::Neox, 64, true, true, false},
        {"normal yarn view", RopeMode::Normal, 64, false, true, true},
        {"neox permuted", RopeMode::Neox, 64, false, false, true},
    };
    for (const Variant& v : variants) {
        cases.push_back({std::string("rope ") + v.name, kExact, [=](OpCaseBuilder& b) {
                             RopeParams p;
                             p.n_dims = v.n_dims;
                             p.mode = v.mode;
                             p.freq_base = 10000.0f;
                             if (v.yarn) {
                                 p.n_ctx_orig = 4096;
                                 p.freq_scale = 0.25f;
                                 p.ext_factor = 1.0f;
                                 p.attn_factor = 0.8f;
                                 p.beta_fast = 32.0f;
                                 p.beta_slow = 1.0f;
                             }
                             const int64_t D = 64, H = 3, T = 5;
                             Tensor* a;
                             if (!v.as_view) {
                                 a = b.input(DType::F32, {D, H, T});
                             } else if (v.yarn) {
                                 // The rope part of each head, as MLA slices it: a view at an offset.
                                 Tensor* q = b.input(DType::F32, {D + 32, H, T});
                                 a = b.graph().view(q, {D, H, T}, {q->nb[1], q->nb[2]}, 32 * sizeof(float));
                             } else {
                                 a = b.graph().permute(b.input(DType::F32, {D, T, H}), 0, 2, 1, 3);
                             }
                             Tensor* pos = b.ids({T}, 0, 6000);
                             Tensor* ff = v.freq_factors
                                              ? b.values(DType::F32, {p.n_dims / 2},
                                                         [](int64_t i) { return 1.0 + 0.37 * double(i % 9); })
                                              : nullptr;
                             return b.graph().rope(a, pos, ff, p);
                         }});
    }
}

void add_softmax_attention(std::vector<OpCase>& cases) {
    cases.push_back({"soft_max no mask", kExact, [](OpCaseBuilder& b) {
                         return b.graph().soft_max(b.input(DType::F32, {37, 5, 3, 2}, 3.0f), nullptr, 0.125f);
                     }});
    for (DType mt : {DType::F32, DType::F16}) {
        cases.push_back({"soft_max causal mask " + tname(mt), kExact, [=](OpCaseBuilder& b) {
                             return b.graph().soft_max(b.input(DType::F32, {37, 5, 3}, 3.0f),
                                                       b.causal_mask(mt, 37, 7, 5), 0.3f);
                         }});
    }
    cases.push_back({"soft_max fully masked row", kExact, [](OpCaseBuilder& b) {
                         return b.graph().soft_max(b.input(DType::F32, {19, 4, 2}), b.causal_mask(DType::F32, 19, 4, 4, 2),
                                                   1.0f);
                     }});
    cases.push_back({"soft_max one long row", kExact, [](OpCaseBuilder& b) {
                         return b.graph().soft_max(b.input(DType::F32, {1000}, 5.0f), nullptr, 1.0f);
                     }});
    cases.push_back({"soft_max transposed", kExact, [](OpCaseBuilder& b) {
                         return b.graph().soft_max(b.graph().transpose(b.input(DType::F32, {5, 37})), nullptr, 1.0f);
                     }});

    for (int64_t k : {1, 5, 37}) {
        cases.push_back({"argsort_top_k ties k" + std::to_string(k), 0.0, [=](OpCaseBuilder& b) {
                             // Few distinct values: many ties, which must keep index order.
                             Tensor* a = b.values(DType::F32, {37, 9}, [](int64_t i) { return double((i * 7) % 5) - 2; });
                             return b.graph().argsort_top_k(a, int(k));
                         }});
    }
    cases.push_back({"argsort_top_k router", 0.0, [](OpCaseBuilder& b) {
                         return b.graph().argsort_top_k(b.input(DType::F32, {256, 3}), 8);
                     }});
    // DeepSeek-V3 routing: 256 experts in 8 groups, the 4 best groups by the sum
    // of their top 2, then the top 8; and V2's max-scored groups.
    cases.push_back({"top_k_grouped v3", 0.0, [](OpCaseBuilder& b) {
                         return b.graph().top_k_grouped(b.input(DType::F32, {256, 5}), 8, 8, 4, 2);
                     }});
    cases.push_back({"top_k_grouped v2", 0.0, [](OpCaseBuilder& b) {
                         return b.graph().top_k_grouped(b.input(DType::F32, {160, 3}), 6, 8, 3, 1);
                     }});
    cases.push_back({"sum_rows", kExact, [](OpCaseBuilder& b) {
                         return b.graph().sum_rows(b.input(DType::F32, {37, 5, 3}));
                     }});
    cases.push_back({"sum_rows transposed", kExact, [](OpCaseBuilder& b) {
                         return b.graph().sum_rows(b.graph().transpose(b.input(DType::F32, {6, 37})));
                     }});
    cases.push_back({"div broadcast", kExact, [](OpCaseBuilder& b) {
                         Tensor* den = b.values(DType::F32, {1, 5, 3}, [](int64_t i) { return 0.5 + double(i % 7); });
                         return b.graph().div(b.input(DType::F32, {8, 5, 3}), den);
                     }});

    struct Attn {
        DType kv;
        int64_t D, Dv, n_head, kv_head, T, n_kv;
        int mask;  // 0 none, 1 F32, 2 F16, 3 F32 with a fully masked row
        bool q_permuted;
        bool v_in_k = false;  // v is the first Dv dims of k's rows (MLA's latent cache)
    };
    const Attn attn[] = {
        {DType::F32, 64, 64, 4, 2, 1, 37, 0, false},  {DType::F32, 64, 48, 4, 4, 7, 37, 1, false},
        {DType::F32, 40, 40, 6, 2, 7, 23, 3, true},   {DType::F16, 64, 64, 4, 2, 1, 37, 2, false},
        {DType::F16, 64, 64, 8, 1, 7, 50, 1, true},   {DType::Q8_0, 64, 64, 4, 2, 1, 37, 1, false},
        {DType::Q8_0, 96, 32, 6, 3, 7, 41, 2, true},
        {DType::F32, 32, 32, 24, 2, 2, 19, 3, true},  // groups of 12 heads
        {DType::F16, 576, 512, 16, 1, 3, 40, 1, false, true},
        {DType::Q8_0, 576, 512, 10, 1, 1, 33, 0, false, true},
        // Several blocks of queries and of keys, and in the last one more
        // heads in a group than a block holds.
        {DType::F16, 576, 512, 16, 1, 9, 75, 1, false, true},
        {DType::F16, 64, 64, 4, 2, 40, 140, 2, true},
        {DType::F32, 32, 32, 40, 1, 5, 19, 3, false},
        // Decode with fewer row groups than threads splits the keys into
        // chunks merged at the end: long caches (several chunks of several
        // blocks, a ragged last one), MLA's single latent head, a chunk (key
        // 64 alone) that the causal mask hides from one row, a fully masked row.
        {DType::F16, 128, 128, 12, 2, 1, 300, 2, false},
        {DType::F16, 576, 512, 16, 1, 1, 200, 1, false, true},
        {DType::F32, 64, 64, 4, 1, 2, 65, 1, false},
        {DType::F32, 64, 64, 4, 1, 2, 150, 3, false},
        {DType::Q8_0, 64, 64, 8, 2, 3, 129, 1, true},
    };
    for (const Attn& a : attn) {
        if (!quant_traits(a.kv) || !quant_traits(a.kv)->vec_dot) continue;
        const double tol = a.kv == DType::F32 ? kDotF32 : a.kv == DType::F16 ? kDotF16 : kDotQuant;
        const std::string name = "flash_attn " + tname(a.kv) + " D" + std::to_string(a.D) + " Dv" +
                                 std::to_string(a.Dv) + " heads " + std::to_string(a.n_head) + "/" +
                                 std::to_string(a.kv_head) + " T" + std::to_string(a.T) + " kv" +
                                 std::to_string(a.n_kv) + " mask" + std::to_string(a.mask) +
                                 (a.q_permuted ? " q permuted" : "") + (a.v_in_k ? " v in k" : "");
        cases.push_back({name, tol, [=](OpCaseBuilder& b) {
                             Tensor* q = a.q_permuted
                                             ? b.graph().permute(b.input(DType::F32, {a.D, a.T, a.n_head}), 0, 2, 1, 3)
                                             : b.input(DType::F32, {a.D, a.n_head, a.T});
                             Tensor* k = b.input(a.kv, {a.D, a.n_kv, a.kv_head});
                             Tensor* v = a.v_in_k ? b.graph().view(k, {a.Dv, a.n_kv, a.kv_head}, {k->nb[1], k->nb[2]}, 0)
                                                  : b.input(a.kv, {a.Dv, a.n_kv, a.kv_head});
                             Tensor* mask = nullptr;
                             if (a.mask)
                                 mask = b.causal_mask(a.mask == 2 ? DType::F16 : DType::F32, a.n_kv, a.T + 2, a.T,
                                                      a.mask == 3 ? 1 : -1);
                             return b.graph().flash_attn(q, k, v, mask, float(1.0 / std::sqrt(double(a.D))));
                         }});
    }
}

void add_copies(std::vector<OpCase>& cases) {
    const double kQ8 = 1e-6;
    for (DType dst : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
        if (!quant_traits(dst) || !quant_traits(dst)->from_float) continue;
        const double tol = dst == DType::Q8_0 ? kQ8 : kExact;
        const int64_t n = dst == DType::Q8_0 ? 64 : 67;
        cases.push_back({"cpy f32 -> " + tname(dst), tol, [=](OpCaseBuilder& b) {
                             return b.graph().cpy(b.input(DType::F32, {n, 5, 3}), b.input(dst, {n, 5, 3}));
                         }});
        cases.push_back({"cpy f32 [32,4,3] -> flat view of " + tname(dst), tol, [=](OpCaseBuilder& b) {
                             // A block of new rows written into a slice of a cache, as a KV cache write does.
                             Tensor* cache = b.input(dst, {32 * 20});
                             const size_t offset = dtype_row_bytes(dst, 64);
                             Tensor* slot = b.graph().view(cache, {32 * 12}, {}, offset);
                             return b.graph().cpy(b.input(DType::F32, {32, 4, 3}), slot);
                         }});
        cases.push_back({"cpy f32 transposed -> " + tname(dst), tol, [=](OpCaseBuilder& b) {
                             Tensor* a = b.graph().transpose(b.input(DType::F32, {6, 64}));
                             return b.graph().cpy(a, b.input(dst, {64, 6}));
                         }});
    }
    cases.push_back({"cpy f16 -> f32 strided destination", kExact, [](OpCaseBuilder& b) {
                         Tensor* dst = b.input(DType::F32, {40, 6});
                         Tensor* view = b.graph().view(dst, {33, 6}, {dst->nb[1]}, 3 * sizeof(float));
                         return b.graph().cpy(b.input(DType::F16, {33, 6}), view);
                     }});
    cases.push_back({"cpy f32 -> f16 transposed destination", kExact, [](OpCaseBuilder& b) {
                         Tensor* dst = b.graph().transpose(b.input(DType::F16, {5, 9}));
                         return b.graph().cpy(b.input(DType::F32, {9, 5}), dst);
                     }});
    for (DType src : {DType::F32, DType::F16, DType::BF16}) {
        cases.push_back({"cont transposed " + tname(src), kExact, [=](OpCaseBuilder& b) {
                             return b.graph().cont(b.graph().transpose(b.input(src, {13, 7})));
                         }});
        cases.push_back({"cont permuted " + tname(src), kExact, [=](OpCaseBuilder& b) {
                             return b.graph().cont(b.graph().permute(b.input(src, {8, 5, 3}), 2, 0, 1, 3));
                         }});
    }
    for (DType t : {DType::F32, DType::F16, DType::I32}) {
        for (int dim = 0; dim < 4; ++dim) {
            cases.push_back({"concat " + tname(t) + " dim" + std::to_string(dim), kExact, [=](OpCaseBuilder& b) {
                                 int64_t na[4] = {13, 5, 3, 2}, nb[4] = {13, 5, 3, 2};
                                 nb[dim] = dim == 0 ? 7 : 1 + dim;
                                 auto make = [&](const int64_t* ne) {
                                     return t == DType::I32 ? b.ids({ne[0], ne[1], ne[2], ne[3]}, -50, 50)
                                                            : b.input(t, {ne[0], ne[1], ne[2], ne[3]});
                                 };
                                 Tensor* a = make(na);
                                 Tensor* c = make(nb);
                                 return b.graph().concat(a, c, dim);
                             }});
        }
    }
    cases.push_back({"concat f32 transposed operand", kExact, [](OpCaseBuilder& b) {
                         Tensor* a = b.graph().transpose(b.input(DType::F32, {4, 9}));
                         return b.graph().concat(a, b.input(DType::F32, {9, 3}), 1);
                     }});
    cases.push_back({"concat f32 transposed operands dim0", kExact, [](OpCaseBuilder& b) {
                         Tensor* a = b.graph().transpose(b.input(DType::F32, {4, 9}));
                         Tensor* c = b.graph().transpose(b.input(DType::F32, {4, 5}));
                         return b.graph().concat(a, c, 0);
                     }});
}

}  // namespace

std::vector<OpCase> backend_op_cases() {
    std::vector<OpCase> cases;
    add_mul_mat(cases);
    add_mul_mat_id(cases);
    add_get_rows(cases);
    add_elementwise(cases);
    add_rope(cases);
    add_softmax_attention(cases);
    add_copies(cases);
    return cases;
}

}  // namespace moelite::test
