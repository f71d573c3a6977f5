// Graph builders: each allocates one node, infers its shape, checks the shape
// rules of core/graph.h with MOELITE_ASSERT (a wrong shape is a bug in model
// code, never bad input) and records sources and parameters where the
// accessors of graph.h read them. build_forward orders the nodes.
#include "core/graph.h"

#include <algorithm>
#include <atomic>

#include "core/error.h"

namespace moelite {

namespace {

// The tensor whose memory a tensor uses: itself, or the owner of a view.
Tensor* memory_owner(Tensor* t) { return t->view_src ? t->view_src : t; }

// A view over memory that already exists (a weight, the KV cache) can point
// at it right away; planned memory gets resolved by the planner's bind.
void resolve_view_now(Tensor& t) {
    if (t.view_src->data) {
        t.data = static_cast<char*>(t.view_src->data) + t.view_offset;
        t.buffer = t.view_src->buffer;
    }
}

bool is_float_type(DType type) { return type == DType::F32 || type == DType::F16 || type == DType::BF16; }

void set_ne(std::initializer_list<int64_t> ne, int64_t* out, int& n_dims) {
    MOELITE_ASSERT(ne.size() >= 1 && ne.size() <= size_t(kMaxDims));
    n_dims = int(ne.size());
    int i = 0;
    for (int64_t n : ne) {
        MOELITE_ASSERT(n > 0);
        out[i++] = n;
    }
}

}  // namespace

// ---------------------------------------------------------------- leaves

Graph::Graph() {
    // The one piece of process-wide state here: a counter, only ever incremented.
    static std::atomic<uint64_t> next_id{1};
    id_ = next_id.fetch_add(1, std::memory_order_relaxed);
}

Tensor* Graph::new_node(Op op, DType type, const int64_t* ne, int n_dims) {
    Tensor& t = tensors_.emplace_back();
    for (int i = 0; i < n_dims; ++i) MOELITE_ASSERT(ne[i] > 0);
    tensor_set_shape(t, type, ne, n_dims);
    t.op = op;
    return &t;
}

Tensor* Graph::new_tensor(DType type, std::initializer_list<int64_t> ne, const std::string& name) {
    int64_t dims[kMaxDims];
    int n_dims = 0;
    set_ne(ne, dims, n_dims);
    Tensor* t = new_node(Op::None, type, dims, n_dims);
    t->name = name;
    return t;
}

Tensor* Graph::new_input(DType type, std::initializer_list<int64_t> ne, const std::string& name) {
    Tensor* t = new_tensor(type, ne, name);
    t->flags |= kTensorInput;
    return t;
}

Tensor* Graph::new_weight(const Tensor& like) {
    MOELITE_ASSERT_MSG(like.data != nullptr, "a weight leaf needs its data");
    Tensor& t = tensors_.emplace_back();
    t.type = like.type;
    for (int i = 0; i < kMaxDims; ++i) {
        t.ne[i] = like.ne[i];
        t.nb[i] = like.nb[i];
    }
    t.data = like.data;
    t.buffer = like.buffer;
    t.name = like.name;
    t.flags = like.flags | kTensorWeight;
    return &t;
}

// ---------------------------------------------------------------- views

Tensor* Graph::new_view(Op op, Tensor* a, size_t offset) {
    MOELITE_ASSERT(a != nullptr);
    Tensor& t = tensors_.emplace_back();
    t.type = a->type;
    t.op = op;
    t.src[0] = a;
    t.view_src = memory_owner(a);
    t.view_offset = a->view_offset + offset;
    t.name = a->name;
    resolve_view_now(t);
    return &t;
}

Tensor* Graph::reshape(Tensor* a, std::initializer_list<int64_t> ne) {
    MOELITE_ASSERT(a != nullptr);
    MOELITE_ASSERT_MSG(a->is_contiguous(), "reshape needs a contiguous source");
    int64_t dims[kMaxDims];
    int n_dims = 0;
    set_ne(ne, dims, n_dims);
    int64_t n = 1;
    for (int i = 0; i < n_dims; ++i) n *= dims[i];
    MOELITE_ASSERT_MSG(n == a->nelements(), "reshape must keep the element count");
    Tensor* t = new_view(Op::Reshape, a, 0);
    tensor_set_shape(*t, a->type, dims, n_dims);
    return t;
}

Tensor* Graph::view(Tensor* a, std::initializer_list<int64_t> ne, std::initializer_list<size_t> nb_rows,
                    size_t offset) {
    MOELITE_ASSERT(a != nullptr);
    int64_t dims[kMaxDims];
    int n_dims = 0;
    set_ne(ne, dims, n_dims);
    MOELITE_ASSERT_MSG(nb_rows.size() == size_t(n_dims - 1), "view: one row stride per dimension after the first");
    MOELITE_ASSERT(dims[0] % dtype_block_size(a->type) == 0);
    Tensor* t = new_view(Op::View, a, offset);
    for (int i = 0; i < kMaxDims; ++i) t->ne[i] = i < n_dims ? dims[i] : 1;
    t->nb[0] = dtype_block_bytes(a->type);
    int i = 1;
    for (size_t nb : nb_rows) t->nb[i++] = nb;
    // Dimensions past the given ones have one element; give them the stride
    // a contiguous tensor would have so is_contiguous() reads naturally.
    if (n_dims == 1) t->nb[1] = t->row_bytes();
    for (i = std::max(n_dims, 2); i < kMaxDims; ++i) t->nb[i] = t->nb[i - 1] * size_t(t->ne[i - 1]);
    MOELITE_ASSERT_MSG(offset + t->nbytes() <= a->nbytes(), "view reaches past the end of its source");
    return t;
}

Tensor* Graph::permute(Tensor* a, int axis0, int axis1, int axis2, int axis3) {
    MOELITE_ASSERT(a != nullptr);
    const int axes[kMaxDims] = {axis0, axis1, axis2, axis3};
    bool seen[kMaxDims] = {};
    for (int axis : axes) {
        MOELITE_ASSERT(axis >= 0 && axis < kMaxDims);
        MOELITE_ASSERT_MSG(!seen[axis], "permute: axes must be distinct");
        seen[axis] = true;
    }
    MOELITE_ASSERT_MSG(!dtype_is_quantized(a->type) || axis0 == 0, "permute: blocks stay in dim 0");
    Tensor* t = new_view(Op::Permute, a, 0);
    for (int i = 0; i < kMaxDims; ++i) {
        t->ne[axes[i]] = a->ne[i];
        t->nb[axes[i]] = a->nb[i];
        t->set_param_i32(i, axes[i]);
    }
    return t;
}

Tensor* Graph::transpose(Tensor* a) {
    Tensor* t = permute(a, 1, 0, 2, 3);
    t->op = Op::Transpose;
    return t;
}

// ---------------------------------------------------------------- ops

Tensor* Graph::get_rows(Tensor* table, Tensor* ids) {
    MOELITE_ASSERT(table != nullptr && ids != nullptr);
    MOELITE_ASSERT(ids->type == DType::I32);
    MOELITE_ASSERT_MSG(ids->ne[1] == table->ne[2] && ids->ne[2] == table->ne[3] && ids->ne[3] == 1,
                       "get_rows: ids [k, b2, b3] must match table [n, rows, b2, b3]");
    const int64_t ne[] = {table->ne[0], ids->ne[0], ids->ne[1], ids->ne[2]};
    Tensor* t = new_node(Op::GetRows, DType::F32, ne, 4);
    t->src[0] = table;
    t->src[1] = ids;
    return t;
}

Tensor* Graph::mul_mat(Tensor* w, Tensor* x) {
    MOELITE_ASSERT(w != nullptr && x != nullptr);
    MOELITE_ASSERT(x->type == DType::F32);
    MOELITE_ASSERT_MSG(w->ne[0] == x->ne[0], "mul_mat: w and x must have the same row length K");
    MOELITE_ASSERT_MSG(x->ne[2] % w->ne[2] == 0 && x->ne[3] % w->ne[3] == 0, "mul_mat: w must broadcast over x");
    const int64_t ne[] = {w->ne[1], x->ne[1], x->ne[2], x->ne[3]};
    Tensor* t = new_node(Op::MulMat, DType::F32, ne, 4);
    t->src[0] = w;
    t->src[1] = x;
    return t;
}

Tensor* Graph::mul_mat_id(Tensor* w, Tensor* x, Tensor* ids) {
    MOELITE_ASSERT(w != nullptr && x != nullptr && ids != nullptr);
    MOELITE_ASSERT(x->type == DType::F32 && ids->type == DType::I32);
    MOELITE_ASSERT_MSG(w->ne[3] == 1, "mul_mat_id: w is [K, M, n_expert]");
    MOELITE_ASSERT_MSG(ids->ne[2] == 1 && ids->ne[3] == 1, "mul_mat_id: ids is [k, T]");
    MOELITE_ASSERT_MSG(x->ne[0] == w->ne[0], "mul_mat_id: w and x must have the same row length K");
    MOELITE_ASSERT_MSG(x->ne[1] == 1 || x->ne[1] == ids->ne[0], "mul_mat_id: x has 1 or k rows per token");
    MOELITE_ASSERT_MSG(x->ne[2] == ids->ne[1] && x->ne[3] == 1, "mul_mat_id: x is [K, nx, T]");
    const int64_t ne[] = {w->ne[1], ids->ne[0], ids->ne[1]};
    Tensor* t = new_node(Op::MulMatId, DType::F32, ne, 3);
    t->src[0] = w;
    t->src[1] = x;
    t->src[2] = ids;
    return t;
}

namespace {

void check_broadcast(const Tensor* a, const Tensor* b) {
    MOELITE_ASSERT(a != nullptr && b != nullptr);
    MOELITE_ASSERT(a->type == DType::F32 && b->type == DType::F32);
    for (int i = 0; i < kMaxDims; ++i) MOELITE_ASSERT_MSG(a->ne[i] % b->ne[i] == 0, "b must broadcast over a");
}

}  // namespace

Tensor* Graph::add(Tensor* a, Tensor* b) {
    check_broadcast(a, b);
    Tensor* t = new_node(Op::Add, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    t->src[1] = b;
    return t;
}

Tensor* Graph::mul(Tensor* a, Tensor* b) {
    check_broadcast(a, b);
    Tensor* t = new_node(Op::Mul, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    t->src[1] = b;
    return t;
}

Tensor* Graph::scale(Tensor* a, float s, float bias) {
    MOELITE_ASSERT(a != nullptr && a->type == DType::F32);
    Tensor* t = new_node(Op::Scale, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    t->set_param_f32(0, s);
    t->set_param_f32(1, bias);
    return t;
}

Tensor* Graph::rms_norm(Tensor* a, float eps) {
    MOELITE_ASSERT(a != nullptr && a->type == DType::F32);
    MOELITE_ASSERT(eps >= 0.0f);
    Tensor* t = new_node(Op::RmsNorm, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    t->set_param_f32(0, eps);
    return t;
}

Tensor* Graph::rope(Tensor* a, Tensor* pos, Tensor* freq_factors, const RopeParams& p) {
    MOELITE_ASSERT(a != nullptr && pos != nullptr);
    MOELITE_ASSERT(a->type == DType::F32 && pos->type == DType::I32);
    MOELITE_ASSERT_MSG(a->ne[3] == 1, "rope: a is [head_dim, n_head, T]");
    MOELITE_ASSERT_MSG(pos->ne[0] == a->ne[2] && pos->nelements() == pos->ne[0], "rope: pos is I32 [T]");
    MOELITE_ASSERT_MSG(p.n_dims > 0 && p.n_dims % 2 == 0 && p.n_dims <= a->ne[0],
                       "rope: n_dims must be even and at most head_dim");
    MOELITE_ASSERT(p.mode == RopeMode::Normal || p.mode == RopeMode::Neox);
    if (freq_factors) {
        MOELITE_ASSERT(freq_factors->type == DType::F32);
        MOELITE_ASSERT_MSG(freq_factors->ne[0] >= p.n_dims / 2, "rope: freq factors are [n_dims / 2]");
    }
    Tensor* t = new_node(Op::Rope, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    t->src[1] = pos;
    t->src[2] = freq_factors;
    t->set_param_i32(0, p.n_dims);
    t->set_param_i32(1, int32_t(p.mode));
    t->set_param_i32(2, p.n_ctx_orig);
    t->set_param_f32(3, p.freq_base);
    t->set_param_f32(4, p.freq_scale);
    t->set_param_f32(5, p.ext_factor);
    t->set_param_f32(6, p.attn_factor);
    t->set_param_f32(7, p.beta_fast);
    t->set_param_f32(8, p.beta_slow);
    return t;
}

RopeParams rope_params(const Tensor& node) {
    MOELITE_ASSERT(node.op == Op::Rope);
    RopeParams p;
    p.n_dims = node.param_i32(0);
    p.mode = RopeMode(node.param_i32(1));
    p.n_ctx_orig = node.param_i32(2);
    p.freq_base = node.param_f32(3);
    p.freq_scale = node.param_f32(4);
    p.ext_factor = node.param_f32(5);
    p.attn_factor = node.param_f32(6);
    p.beta_fast = node.param_f32(7);
    p.beta_slow = node.param_f32(8);
    return p;
}

namespace {

// Mask rules shared by soft_max and flash_attn: [cols, >= rows, 1, 1], F32 or F16.
void check_mask(const Tensor* mask, int64_t cols, int64_t rows) {
    if (!mask) return;
    MOELITE_ASSERT(mask->type == DType::F32 || mask->type == DType::F16);
    MOELITE_ASSERT_MSG(mask->ne[0] == cols && mask->ne[1] >= rows, "mask must be [cols, >= rows]");
    MOELITE_ASSERT_MSG(mask->ne[2] == 1 && mask->ne[3] == 1, "mask is the same for every head");
}

}  // namespace

Tensor* Graph::soft_max(Tensor* a, Tensor* mask, float s) {
    MOELITE_ASSERT(a != nullptr && a->type == DType::F32);
    check_mask(mask, a->ne[0], a->ne[1]);
    Tensor* t = new_node(Op::SoftMax, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    t->src[1] = mask;
    t->set_param_f32(0, s);
    return t;
}

Tensor* Graph::silu(Tensor* a) {
    MOELITE_ASSERT(a != nullptr && a->type == DType::F32);
    Tensor* t = new_node(Op::Silu, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    return t;
}

Tensor* Graph::sigmoid(Tensor* a) {
    MOELITE_ASSERT(a != nullptr && a->type == DType::F32);
    Tensor* t = new_node(Op::Sigmoid, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    return t;
}

Tensor* Graph::swiglu(Tensor* g, Tensor* u) {
    MOELITE_ASSERT(g != nullptr && u != nullptr);
    MOELITE_ASSERT(g->type == DType::F32 && u->type == DType::F32);
    MOELITE_ASSERT_MSG(tensor_same_shape(*g, *u), "swiglu: g and u must have the same shape");
    Tensor* t = new_node(Op::Swiglu, DType::F32, g->ne, kMaxDims);
    t->src[0] = g;
    t->src[1] = u;
    return t;
}

Tensor* Graph::argsort_top_k(Tensor* a, int k) {
    MOELITE_ASSERT(a != nullptr && a->type == DType::F32);
    MOELITE_ASSERT_MSG(k >= 1 && k <= a->ne[0], "argsort_top_k: 1 <= k <= row length");
    const int64_t ne[] = {k, a->ne[1], a->ne[2], a->ne[3]};
    Tensor* t = new_node(Op::ArgsortTopK, DType::I32, ne, 4);
    t->src[0] = a;
    t->set_param_i32(0, k);
    return t;
}

Tensor* Graph::top_k_grouped(Tensor* a, int k, int n_group, int topk_group, int group_top_n) {
    Tensor* t = argsort_top_k(a, k);
    if (n_group <= 1) return t;
    MOELITE_ASSERT_MSG(a->ne[0] % n_group == 0, "top_k_grouped: groups must divide the row");
    const int64_t per_group = a->ne[0] / n_group;
    MOELITE_ASSERT(topk_group >= 1 && topk_group <= n_group);
    MOELITE_ASSERT(group_top_n >= 1 && group_top_n <= per_group);
    MOELITE_ASSERT_MSG(k <= topk_group * per_group, "top_k_grouped: k exceeds the entries of the kept groups");
    t->set_param_i32(1, n_group);
    t->set_param_i32(2, topk_group);
    t->set_param_i32(3, group_top_n);
    return t;
}

Tensor* Graph::sum_rows(Tensor* a) {
    MOELITE_ASSERT(a != nullptr && a->type == DType::F32);
    const int64_t ne[] = {1, a->ne[1], a->ne[2], a->ne[3]};
    Tensor* t = new_node(Op::SumRows, DType::F32, ne, 4);
    t->src[0] = a;
    return t;
}

Tensor* Graph::div(Tensor* a, Tensor* b) {
    check_broadcast(a, b);
    Tensor* t = new_node(Op::Div, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    t->src[1] = b;
    return t;
}

Tensor* Graph::concat(Tensor* a, Tensor* b, int dim) {
    MOELITE_ASSERT(a != nullptr && b != nullptr);
    MOELITE_ASSERT(dim >= 0 && dim < kMaxDims);
    MOELITE_ASSERT_MSG(a->type == b->type && !dtype_is_quantized(a->type), "concat: one non-quantized type");
    int64_t ne[kMaxDims];
    for (int i = 0; i < kMaxDims; ++i) {
        if (i == dim) {
            ne[i] = a->ne[i] + b->ne[i];
        } else {
            MOELITE_ASSERT_MSG(a->ne[i] == b->ne[i], "concat: dims other than dim must be equal");
            ne[i] = a->ne[i];
        }
    }
    Tensor* t = new_node(Op::Concat, a->type, ne, kMaxDims);
    t->src[0] = a;
    t->src[1] = b;
    t->set_param_i32(0, dim);
    return t;
}

Tensor* Graph::cont(Tensor* a) {
    MOELITE_ASSERT(a != nullptr);
    MOELITE_ASSERT_MSG(is_float_type(a->type), "cont: a must be F32, F16 or BF16");
    Tensor* t = new_node(Op::Cont, DType::F32, a->ne, kMaxDims);
    t->src[0] = a;
    return t;
}

Tensor* Graph::cpy(Tensor* a, Tensor* dst) {
    MOELITE_ASSERT(a != nullptr && dst != nullptr);
    MOELITE_ASSERT_MSG(a->nelements() == dst->nelements(), "cpy: a and dst must have the same element count");
    Tensor& t = tensors_.emplace_back();
    t.type = dst->type;
    for (int i = 0; i < kMaxDims; ++i) {
        t.ne[i] = dst->ne[i];
        t.nb[i] = dst->nb[i];
    }
    t.op = Op::Cpy;
    t.src[0] = a;
    t.src[1] = dst;
    t.view_src = memory_owner(dst);
    t.view_offset = dst->view_offset;
    t.name = dst->name;
    resolve_view_now(t);
    return &t;
}

Tensor* Graph::flash_attn(Tensor* q, Tensor* k, Tensor* v, Tensor* mask, float s) {
    MOELITE_ASSERT(q != nullptr && k != nullptr && v != nullptr);
    MOELITE_ASSERT(q->type == DType::F32);
    MOELITE_ASSERT_MSG(q->ne[3] == 1 && k->ne[3] == 1 && v->ne[3] == 1, "flash_attn: 3-d operands");
    MOELITE_ASSERT_MSG(k->ne[0] == q->ne[0], "flash_attn: q and k must have the same head size D");
    MOELITE_ASSERT_MSG(v->ne[1] == k->ne[1] && v->ne[2] == k->ne[2], "flash_attn: k and v must cover the same kv");
    MOELITE_ASSERT_MSG(q->ne[1] % k->ne[2] == 0, "flash_attn: n_head must be a multiple of kv_head");
    check_mask(mask, k->ne[1], q->ne[2]);
    const int64_t ne[] = {v->ne[0], q->ne[1], q->ne[2]};
    Tensor* t = new_node(Op::FlashAttn, DType::F32, ne, 3);
    t->src[0] = q;
    t->src[1] = k;
    t->src[2] = v;
    t->src[3] = mask;
    t->set_param_f32(0, s);
    return t;
}

// ---------------------------------------------------------------- order

void Graph::build_forward(Tensor* t) {
    MOELITE_ASSERT(t != nullptr);
    t->flags |= kTensorOutput;
    visit(t);
}

// Iterative post-order depth-first walk through src[] and view_src: a node is
// appended after everything it reads. Model graphs are thousands of nodes
// deep along the residual stream, too deep for comfortable recursion.
void Graph::visit(Tensor* root) {
    if (visited_.count(root)) return;
    struct Frame {
        Tensor* t;
        int next;  // next dependency slot: 0..kMaxSrc-1 = src[], kMaxSrc = view_src
    };
    std::vector<Frame> stack;
    visited_.insert(root);
    stack.push_back({root, 0});
    while (!stack.empty()) {
        Frame& f = stack.back();
        Tensor* dep = nullptr;
        while (f.next <= kMaxSrc && !dep) {
            Tensor* d = f.next < kMaxSrc ? f.t->src[f.next] : f.t->view_src;
            ++f.next;
            if (d && !visited_.count(d)) dep = d;
        }
        if (dep) {
            visited_.insert(dep);
            stack.push_back({dep, 0});  // invalidates f
            continue;
        }
        Tensor* done = f.t;
        stack.pop_back();
        if (done->is_leaf())
            leaves_.push_back(done);
        else
            nodes_.push_back(done);
    }
}

}  // namespace moelite
