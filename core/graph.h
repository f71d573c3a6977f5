// Graph: the ops of one forward pass. A model builds it once per shape, the
// planner (core/planner.h) sizes one arena for every intermediate, and a
// backend (or the scheduler, across backends) computes it; the same graph is
// reused for every token of that shape. Building computes nothing.
//
// Shapes follow core/tensor.h: ne[0] is contiguous. Every computed node gets a
// contiguous result of the shape below. Sources sit in src[] in the order of
// the builder's arguments (an optional source that is absent is nullptr and
// leaves its slot empty); parameters sit in params[] where the accessors at the
// end of this file read them. Operand conventions:
//
//  get_rows(table, ids)      table [n, rows, b2, b3] (any type), ids I32 [k, b2, b3]
//                            -> F32 [n, k, b2, b3]: out[:, i] = to_float(table[:, ids[i]])
//  mul_mat(w, x)             w [K, M, w2, w3] (weight, any supported type; rows = outputs),
//                            x [K, N, x2, x3] F32 with x2 % w2 == 0 and x3 % w3 == 0
//                            -> F32 [M, N, x2, x3]: out[m, n] = sum_k w[k, m] * x[k, n]
//                            i.e. every output is a dot product of one weight row and one
//                            activation row (ggml's C = B * A^T, spelled out).
//  mul_mat_id(w, x, ids)     w [K, M, n_expert] (stacked experts), x [K, nx, T] F32 with nx = 1
//                            (the same row for every chosen expert) or nx = k, ids I32 [k, T]
//                            -> F32 [M, k, T]: out[:, j, t] = w[:, :, ids[j, t]] * x[:, j % nx, t]
//  add(a, b), mul(a, b)      elementwise F32; b broadcasts over a (a.ne[i] % b.ne[i] == 0);
//                            the result has a's shape
//  scale(a, s, bias)         a * s + bias
//  rms_norm(a, eps)          per row: a / sqrt(mean(a^2) + eps)  (no weight; multiply after)
//  rope(a, pos, freq, p)     a [head_dim, n_head, T, 1] F32, pos I32 [T]; rotates the first
//                            p.n_dims dims of each head by pos * theta_i, theta_i =
//                            freq_base^(-2i/n_dims) (divided by freq[i] when the optional
//                            freq factors F32 [>= n_dims/2] are given), with YaRN when
//                            p.ext_factor != 0; the other dims are copied. Normal mode pairs
//                            (2i, 2i+1); Neox pairs (i, i + n_dims/2).
//  soft_max(a, mask, s)      per row softmax(a * s + mask); mask F32/F16 [ne0, >= ne1, 1, 1]
//                            (optional, may be null), row i of a uses mask row i, the same for
//                            every index of dims 2, 3; -inf entries are masked
//  silu(a), sigmoid(a)       elementwise
//  swiglu(g, u)              silu(g) * u, same shapes
//  sum_rows(a)               a F32 [n, rows...] -> F32 [1, rows...]: the sum of each row
//  div(a, b)                 a / b elementwise F32, b broadcast over a as for mul
//  top_k_grouped(a, k, g, tg, n)
//                            as argsort_top_k, but only among the entries of the tg best of
//                            g equal groups of each row (group score: the sum of its n
//                            largest entries; ties: lower group first). DeepSeek's
//                            group-limited expert routing; g <= 1 is plain argsort_top_k.
//  argsort_top_k(a, k)       a F32 [n, rows...] -> I32 [k, rows...]: indices of the k largest
//                            per row, largest first (ties: lower index first); 1 <= k <= n
//  concat(a, b, dim)         joined along dim; other dims equal; a and b of the same
//                            non-quantized type, which the result keeps
//  cont(a)                   contiguous F32 copy of a (any layout, a of any float type)
//  cpy(a, dst)               copies a into dst (a view, possibly of another type: F32, F16,
//                            BF16, Q8_0 ...), converting; same element count, elements paired
//                            in logical order (ne[0] fastest). Returns a new node that stands
//                            for dst after the write: dst's type, shape and strides, and
//                            view_src/view_offset pointing at dst's memory, so the planner
//                            gives it no storage; yet it is computed (op_is_view is false).
//                            src = {a, dst}. A cpy into memory that other nodes read (the KV
//                            cache) must go through build_forward before the nodes reading
//                            that memory, so that it comes first in the order.
//  flash_attn(q, k, v, mask, s)
//                            q [D, n_head, T], k [D, n_kv, kv_head], v [Dv, n_kv, kv_head] (k, v
//                            F32/F16/Q8_0), n_head % kv_head == 0 (GQA), mask F32/F16
//                            [n_kv, >= T, 1, 1] or null -> F32 [Dv, n_head, T]:
//                            softmax(q k^T * s + mask) v per head
//
// Views (reshape, view, permute, transpose) share memory with their source:
// view_src is always the tensor that owns the memory (never another view) and
// view_offset the byte offset into it. reshape needs a contiguous source;
// view takes explicit ne, row strides and a byte offset relative to its
// source and must stay within it; permute sends source dim i to position
// axis_i (params[0..3] = the axes), transpose swaps dims 0 and 1.
// Invalid shapes are bugs in the model code: they fail MOELITE_ASSERT.
#pragma once

#include <deque>
#include <initializer_list>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/tensor.h"

namespace moelite {

enum class RopeMode : int32_t { Normal = 0, Neox = 2 };

struct RopeParams {
    int32_t n_dims = 0;  // rotated dimensions per head (<= head_dim, even)
    RopeMode mode = RopeMode::Normal;
    int32_t n_ctx_orig = 0;  // training context, for YaRN's correction dims
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;   // 1 / context scaling factor
    float ext_factor = 0.0f;   // YaRN extrapolation mix; 0 disables YaRN
    float attn_factor = 1.0f;  // multiplies cos and sin (YaRN magnitude scaling)
    float beta_fast = 32.0f;
    float beta_slow = 1.0f;
};

class Graph {
public:
    Graph();
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;

    // Unique within the process, never reused: tells a scheduler that a graph
    // is a new one even when it sits at the address of a destroyed one.
    uint64_t id() const { return id_; }

    // Leaves. A leaf with data == nullptr gets storage from the planner.
    Tensor* new_tensor(DType type, std::initializer_list<int64_t> ne, const std::string& name = {});
    // A leaf the caller fills before compute (flag kTensorInput).
    Tensor* new_input(DType type, std::initializer_list<int64_t> ne, const std::string& name = {});
    // A leaf over existing memory (a weight): data and buffer set, flag kTensorWeight.
    Tensor* new_weight(const Tensor& like);

    // Views.
    Tensor* reshape(Tensor* a, std::initializer_list<int64_t> ne);  // a must be contiguous
    Tensor* view(Tensor* a, std::initializer_list<int64_t> ne, std::initializer_list<size_t> nb_rows,
                 size_t offset);  // nb_rows: strides of dims 1.. (nb[0] is the element size)
    Tensor* permute(Tensor* a, int axis0, int axis1, int axis2, int axis3);  // source dim i -> axis_i
    Tensor* transpose(Tensor* a);                                          // swap dims 0 and 1

    // Ops (semantics above).
    Tensor* get_rows(Tensor* table, Tensor* ids);
    Tensor* mul_mat(Tensor* w, Tensor* x);
    Tensor* mul_mat_id(Tensor* w, Tensor* x, Tensor* ids);
    Tensor* add(Tensor* a, Tensor* b);
    Tensor* mul(Tensor* a, Tensor* b);
    Tensor* scale(Tensor* a, float s, float bias = 0.0f);
    Tensor* rms_norm(Tensor* a, float eps);
    Tensor* rope(Tensor* a, Tensor* pos, Tensor* freq_factors, const RopeParams& p);
    Tensor* soft_max(Tensor* a, Tensor* mask, float s);
    Tensor* silu(Tensor* a);
    Tensor* sigmoid(Tensor* a);
    Tensor* swiglu(Tensor* g, Tensor* u);
    Tensor* argsort_top_k(Tensor* a, int k);
    Tensor* top_k_grouped(Tensor* a, int k, int n_group, int topk_group, int group_top_n);
    Tensor* sum_rows(Tensor* a);
    Tensor* div(Tensor* a, Tensor* b);
    Tensor* concat(Tensor* a, Tensor* b, int dim);
    Tensor* cont(Tensor* a);
    Tensor* cpy(Tensor* a, Tensor* dst);
    Tensor* flash_attn(Tensor* q, Tensor* k, Tensor* v, Tensor* mask, float s);

    // Marks t as a result (kTensorOutput) and adds it and everything it
    // depends on to the execution order. Call once per output, in order.
    void build_forward(Tensor* t);

    // Every non-leaf tensor in execution order, each after its sources. Views
    // are included: backends compute nothing for nodes with op_is_view(op)
    // (cpy is not one of them), the planner resolves their data.
    const std::vector<Tensor*>& nodes() const { return nodes_; }
    // Leaves reached by build_forward (weights, inputs, constants).
    const std::vector<Tensor*>& leaves() const { return leaves_; }
    size_t tensor_count() const { return tensors_.size(); }

private:
    Tensor* new_node(Op op, DType type, const int64_t* ne, int n_dims);
    // A view node of a with a's type; the caller sets ne and nb.
    Tensor* new_view(Op op, Tensor* a, size_t offset);
    void visit(Tensor* t);

    uint64_t id_;
    std::deque<Tensor> tensors_;  // stable addresses
    std::vector<Tensor*> nodes_;
    std::vector<Tensor*> leaves_;
    std::unordered_set<const Tensor*> visited_;
};

// Typed accessors for op parameters, so builders and kernels agree. The slots:
//   scale        params f32[0] = s, f32[1] = bias
//   rms_norm     params f32[0] = eps
//   soft_max     params f32[0] = s                  (src: a, mask or null)
//   flash_attn   params f32[0] = s                  (src: q, k, v, mask or null)
//   argsort_top_k params i32[0] = k
//   concat       params i32[0] = dim
//   permute, transpose params i32[0..3] = axes (source dim i -> axis i)
//   rope         params i32[0] = n_dims, i32[1] = mode, i32[2] = n_ctx_orig, f32[3] = freq_base,
//                f32[4] = freq_scale, f32[5] = ext_factor, f32[6] = attn_factor,
//                f32[7] = beta_fast, f32[8] = beta_slow (src: a, pos, freq_factors or null)
RopeParams rope_params(const Tensor& node);
inline float scale_param_s(const Tensor& node) { return node.param_f32(0); }
inline float scale_param_bias(const Tensor& node) { return node.param_f32(1); }
inline float rms_norm_eps(const Tensor& node) { return node.param_f32(0); }
inline float soft_max_scale(const Tensor& node) { return node.param_f32(0); }
inline float flash_attn_scale(const Tensor& node) { return node.param_f32(0); }
inline int argsort_top_k_k(const Tensor& node) { return node.param_i32(0); }
// argsort_top_k's grouping (top_k_grouped): i32[1] = groups (0 or 1: none),
// i32[2] = groups kept, i32[3] = entries summed for a group's score.
inline int top_k_groups(const Tensor& node) { return node.param_i32(1); }
inline int top_k_groups_kept(const Tensor& node) { return node.param_i32(2); }
inline int top_k_group_score_n(const Tensor& node) { return node.param_i32(3); }
inline int concat_dim(const Tensor& node) { return node.param_i32(0); }

}  // namespace moelite
