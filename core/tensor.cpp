#include "core/tensor.h"

#include "core/error.h"

namespace moelite {

const char* op_name(Op op) {
    static const char* const kNames[] = {
        "none", "view",     "reshape", "permute", "transpose", "get_rows",      "mul_mat", "mul_mat_id",
        "add",  "mul",      "scale",   "rms_norm", "rope",     "soft_max",      "silu",    "sigmoid",
        "swiglu", "argsort_top_k", "concat", "cont", "cpy", "flash_attn", "sum_rows", "div",
    };
    static_assert(sizeof(kNames) / sizeof(kNames[0]) == size_t(Op::Count), "op name table out of date");
    MOELITE_ASSERT(op < Op::Count);
    return kNames[size_t(op)];
}

size_t Tensor::nbytes() const {
    for (int i = 0; i < kMaxDims; ++i)
        if (ne[i] <= 0) return 0;
    const int64_t bs = dtype_block_size(type);
    size_t bytes;
    if (bs == 1) {
        bytes = dtype_block_bytes(type);
        for (int i = 0; i < kMaxDims; ++i) bytes += size_t(ne[i] - 1) * nb[i];
    } else {
        bytes = size_t(ne[0] / bs) * nb[0];
        for (int i = 1; i < kMaxDims; ++i) bytes += size_t(ne[i] - 1) * nb[i];
    }
    return bytes;
}

bool Tensor::is_contiguous() const {
    size_t expected = dtype_block_bytes(type);
    if (nb[0] != expected) return false;
    expected = row_bytes();
    for (int i = 1; i < kMaxDims; ++i) {
        if (ne[i] != 1 && nb[i] != expected) return false;
        expected *= size_t(ne[i]);
    }
    return true;
}

bool Tensor::rows_contiguous() const { return nb[0] == dtype_block_bytes(type); }

void tensor_set_shape(Tensor& t, DType type, const int64_t* ne, int n_dims) {
    MOELITE_ASSERT(n_dims >= 1 && n_dims <= kMaxDims);
    t.type = type;
    for (int i = 0; i < kMaxDims; ++i) t.ne[i] = i < n_dims ? ne[i] : 1;
    MOELITE_ASSERT(t.ne[0] % dtype_block_size(type) == 0);
    t.nb[0] = dtype_block_bytes(type);
    t.nb[1] = dtype_row_bytes(type, t.ne[0]);
    for (int i = 2; i < kMaxDims; ++i) t.nb[i] = t.nb[i - 1] * size_t(t.ne[i - 1]);
}

bool tensor_same_shape(const Tensor& a, const Tensor& b) {
    for (int i = 0; i < kMaxDims; ++i)
        if (a.ne[i] != b.ne[i]) return false;
    return true;
}

std::string tensor_shape_string(const Tensor& t) {
    int n = kMaxDims;
    while (n > 1 && t.ne[n - 1] == 1) --n;
    std::string s = "[";
    for (int i = 0; i < n; ++i) {
        if (i) s += ", ";
        s += std::to_string(t.ne[i]);
    }
    return s + "]";
}

}  // namespace moelite
