// Dispatch of the CPU kernels: which ops and types are supported, how much
// scratch each needs, and the call of each op's kernel. Also the row
// conversion helpers every kernel shares (kernel table first, reference of
// quant/quant.h as the fallback).
#include <algorithm>
#include <cstring>

#include "backends/cpu/ops.h"
#include "core/error.h"
#include "core/fp16.h"
#include "quant/quant.h"

namespace moelite::cpu {
namespace {

void f32_to_float(const void* src, float* dst, int64_t n) { std::memcpy(dst, src, sizeof(float) * size_t(n)); }
void f32_from_float(const float* src, void* dst, int64_t n) { std::memcpy(dst, src, sizeof(float) * size_t(n)); }
void f16_to_float(const void* src, float* dst, int64_t n) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
}
void bf16_to_float(const void* src, float* dst, int64_t n) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
}

bool is_f32(const Tensor* t) { return t && t->type == DType::F32; }
bool is_plain_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool out_rows_contiguous(const Tensor& node) { return node.nb[0] == dtype_block_bytes(node.type); }

bool same_shape_f32(const Tensor& node, const Tensor* a) {
    return is_f32(&node) && is_f32(a) && tensor_same_shape(node, *a) && out_rows_contiguous(node);
}

bool supports_get_rows(const Tensor& node) {
    const Tensor* table = node.src[0];
    const Tensor* ids = node.src[1];
    if (!table || !ids || !is_f32(&node) || ids->type != DType::I32 || !out_rows_contiguous(node)) return false;
    if (!row_to_float(table->type) || !table->rows_contiguous()) return false;
    return node.ne[0] == table->ne[0] && node.ne[1] == ids->ne[0] && node.ne[2] == ids->ne[1] &&
           node.ne[3] == ids->ne[2] && ids->ne[1] == table->ne[2] && ids->ne[2] == table->ne[3] && ids->ne[3] == 1;
}

bool supports_binary(const Tensor& node) {
    const Tensor* a = node.src[0];
    const Tensor* b = node.src[1];
    if (!same_shape_f32(node, a) || !is_f32(b)) return false;
    for (int i = 0; i < kMaxDims; ++i)
        if (b->ne[i] <= 0 || a->ne[i] % b->ne[i] != 0) return false;
    return true;
}

bool supports_rope(const Tensor& node) {
    const Tensor* a = node.src[0];
    const Tensor* pos = node.src[1];
    const Tensor* ff = node.src[2];
    if (!same_shape_f32(node, a) || !pos || pos->type != DType::I32 || pos->ne[0] != a->ne[2]) return false;
    const RopeParams p = rope_params(node);
    if (p.n_dims <= 0 || p.n_dims % 2 != 0 || p.n_dims > a->ne[0]) return false;
    if (p.mode != RopeMode::Normal && p.mode != RopeMode::Neox) return false;
    if (ff && (!is_f32(ff) || ff->ne[0] < p.n_dims / 2 || !ff->is_contiguous())) return false;
    return true;
}

bool supports_soft_max(const Tensor& node) {
    const Tensor* a = node.src[0];
    const Tensor* mask = node.src[1];
    if (!same_shape_f32(node, a)) return false;
    if (!mask) return true;
    if (mask->type != DType::F32 && mask->type != DType::F16) return false;
    return mask->ne[0] == a->ne[0] && mask->ne[1] >= a->ne[1] && a->ne[2] % mask->ne[2] == 0 &&
           a->ne[3] % mask->ne[3] == 0;
}

bool supports_argsort(const Tensor& node) {
    const Tensor* a = node.src[0];
    if (!is_f32(a) || node.type != DType::I32 || !out_rows_contiguous(node)) return false;
    return node.ne[0] >= 1 && node.ne[0] <= a->ne[0] && node.ne[1] == a->ne[1] && node.ne[2] == a->ne[2] &&
           node.ne[3] == a->ne[3];
}

bool supports_concat(const Tensor& node) {
    const Tensor* a = node.src[0];
    const Tensor* b = node.src[1];
    if (!a || !b || a->type != node.type || b->type != node.type || dtype_is_quantized(node.type)) return false;
    const int dim = concat_dim(node);
    if (dim < 0 || dim >= kMaxDims) return false;
    for (int i = 0; i < kMaxDims; ++i) {
        const int64_t expect = i == dim ? a->ne[i] + b->ne[i] : a->ne[i];
        if (node.ne[i] != expect || (i != dim && b->ne[i] != a->ne[i])) return false;
    }
    return true;
}

bool supports_cont(const Tensor& node) {
    const Tensor* a = node.src[0];
    if (!a || !is_f32(&node) || !out_rows_contiguous(node) || !tensor_same_shape(node, *a)) return false;
    return is_plain_float(a->type) || (a->rows_contiguous() && row_to_float(a->type));
}

bool supports_cpy(const Tensor& node) {
    const Tensor* a = node.src[0];
    if (!a || !node.src[1] || !is_plain_float(a->type) || a->nelements() != node.nelements()) return false;
    if (is_plain_float(node.type)) return true;
    // Quantized destination: whole rows of whole blocks, through the row conversion.
    return node.rows_contiguous() && quant_traits(node.type) && quant_traits(node.type)->from_float;
}

}  // namespace

ToFloatFn row_to_float(DType type) {
    const QuantTraits* t = quant_traits(type);
    if (t && t->to_float) return t->to_float;
    switch (type) {
        case DType::F32: return f32_to_float;
        case DType::F16: return f16_to_float;
        case DType::BF16: return bf16_to_float;
        default: return nullptr;
    }
}

ToFloatFn row_to_float(const KernelTable& kt, DType type) {
    if (kt.to_float[uint32_t(type)]) return kt.to_float[uint32_t(type)];
    return row_to_float(type);
}

UnitTake OpContext::start_units() const {
    UnitTake take;
    take.shared = next_unit != nullptr && nth > 1;
    if (take.shared && ith == 0) next_unit->store(0, std::memory_order_relaxed);
    return take;
}

bool OpContext::take_units(int64_t n, int64_t min_take, UnitTake* take) const {
    if (!take->shared) {
        if (take->even_share_taken) return false;
        take->even_share_taken = true;
        split_range(n, ith, nth, &take->begin, &take->end);
        return take->begin < take->end;
    }
    int64_t begin = next_unit->load(std::memory_order_relaxed);
    for (;;) {
        if (begin >= n) return false;
        const int64_t count = std::min(n - begin, std::max(min_take, (n - begin) / (2 * int64_t(nth))));
        if (next_unit->compare_exchange_weak(begin, begin + count, std::memory_order_relaxed)) {
            take->begin = begin;
            take->end = begin + count;
            return true;
        }
    }
}

FromFloatFn row_from_float(const KernelTable& kt, DType type) {
    if (kt.quantize_row[uint32_t(type)]) return kt.quantize_row[uint32_t(type)];
    const QuantTraits* t = quant_traits(type);
    if (t && t->from_float) return t->from_float;
    return type == DType::F32 ? f32_from_float : nullptr;
}

VecDotFn row_vec_dot(const KernelTable& kt, DType type, DType* vdt) {
    const QuantTraits* t = quant_traits(type);
    if (!t || !t->vec_dot) return nullptr;
    *vdt = t->vec_dot_type;
    return kt.vec_dot[uint32_t(type)] ? kt.vec_dot[uint32_t(type)] : t->vec_dot;
}

namespace {

// Whether t's memory is a repacked weight's (t itself or what it views).
bool is_repacked(const Tensor* t) {
    for (; t != nullptr; t = t->view_src)
        if (t->flags & kTensorRepacked) return true;
    return false;
}

}  // namespace

bool op_supported(const Tensor& node) {
    // A repacked weight (quant/repack.h) is read by mul_mat as its weight and
    // by nothing else: no other kernel knows its layout.
    for (int i = 0; i < kMaxSrc; ++i) {
        if (node.src[i] == nullptr || !is_repacked(node.src[i])) continue;
        if (node.op != Op::MulMat || i != 0 || node.src[0]->is_view()) return false;
    }
    if (is_repacked(&node) && node.op != Op::None) return false;
    switch (node.op) {
        case Op::None:
        case Op::View:
        case Op::Reshape:
        case Op::Permute:
        case Op::Transpose: return true;  // nothing to compute
        case Op::GetRows: return supports_get_rows(node);
        case Op::MulMat: return supports_mul_mat(node);
        case Op::MulMatId: return supports_mul_mat_id(node);
        case Op::Add:
        case Op::Mul:
        case Op::Div: return supports_binary(node);
        case Op::SumRows: return node.src[0]->type == DType::F32 && node.type == DType::F32;
        case Op::Scale:
        case Op::RmsNorm:
        case Op::Silu:
        case Op::Sigmoid: return same_shape_f32(node, node.src[0]);
        case Op::Swiglu: return same_shape_f32(node, node.src[0]) && same_shape_f32(node, node.src[1]);
        case Op::Rope: return supports_rope(node);
        case Op::SoftMax: return supports_soft_max(node);
        case Op::ArgsortTopK: return supports_argsort(node);
        case Op::Concat: return supports_concat(node);
        case Op::Cont: return supports_cont(node);
        case Op::Cpy: return supports_cpy(node);
        case Op::FlashAttn: return supports_flash_attn(node);
        case Op::Count: break;
    }
    return false;
}

WorkSize op_work_size(const Tensor& node, const KernelTable& kt, int nth, int64_t blas_min_cols) {
    switch (node.op) {
        case Op::MulMat: return work_size_mul_mat(node, kt, nth, blas_min_cols);
        case Op::MulMatId: return work_size_mul_mat_id(node, kt, nth);
        case Op::Rope: return work_size_rope(node);
        case Op::ArgsortTopK: return work_size_argsort_top_k(node);
        case Op::FlashAttn: return work_size_flash_attn(node, nth);
        case Op::Cont:
        case Op::Cpy: return work_size_copy(node);
        default: return {};
    }
}

void op_compute(const Tensor& node, const OpContext& ctx) {
    switch (node.op) {
        case Op::GetRows: op_get_rows(node, ctx); break;
        case Op::MulMat: op_mul_mat(node, ctx); break;
        case Op::MulMatId: op_mul_mat_id(node, ctx); break;
        case Op::Add: op_add(node, ctx); break;
        case Op::Mul: op_mul(node, ctx); break;
        case Op::Scale: op_scale(node, ctx); break;
        case Op::RmsNorm: op_rms_norm(node, ctx); break;
        case Op::Rope: op_rope(node, ctx); break;
        case Op::SoftMax: op_soft_max(node, ctx); break;
        case Op::Silu: op_silu(node, ctx); break;
        case Op::Sigmoid: op_sigmoid(node, ctx); break;
        case Op::Swiglu: op_swiglu(node, ctx); break;
        case Op::ArgsortTopK: op_argsort_top_k(node, ctx); break;
        case Op::Concat: op_concat(node, ctx); break;
        case Op::Cont: op_cont(node, ctx); break;
        case Op::Cpy: op_cpy(node, ctx); break;
        case Op::FlashAttn: op_flash_attn(node, ctx); break;
        case Op::SumRows: op_sum_rows(node, ctx); break;
        case Op::Div: op_div(node, ctx); break;
        default: MOELITE_ASSERT_MSG(false, "CPU backend: op has no kernel");
    }
}

}  // namespace moelite::cpu
