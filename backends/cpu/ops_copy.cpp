// Copies and conversions: cont, cpy, concat. Semantics in core/graph.h.
//
// cpy writes into the destination view the node aliases (the node's own data
// and strides). When the source and destination shapes differ but hold the
// same number of elements (a [D, H, T] block written into a flat slice of a
// KV cache), elements are taken in row-major order, ne[0] fastest, as ggml
// does. Each destination row is gathered into F32 scratch and converted once
// with the destination type's row conversion (a quantized destination needs
// whole blocks, so its rows must be contiguous).
#include <cstring>

#include "backends/cpu/ops.h"
#include "core/error.h"
#include "core/fp16.h"
#include "quant/quant.h"

namespace moelite::cpu {
namespace {

bool is_plain_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

inline float load_as_f32(DType type, const char* p) {
    uint16_t h;
    switch (type) {
        case DType::F16:
            std::memcpy(&h, p, 2);
            return fp16_to_fp32(h);
        case DType::BF16:
            std::memcpy(&h, p, 2);
            return bf16_to_fp32(h);
        default: {
            float v;
            std::memcpy(&v, p, 4);
            return v;
        }
    }
}

// Source row (i1, i2, i3) of a plain float tensor as F32 in dst (n elements).
void load_row(const Tensor& a, int64_t i1, int64_t i2, int64_t i3, float* dst) {
    const char* src = static_cast<const char*>(a.data) + i1 * a.nb[1] + i2 * a.nb[2] + i3 * a.nb[3];
    const int64_t n = a.ne[0];
    if (a.type == DType::F32 && a.nb[0] == sizeof(float)) {
        std::memcpy(dst, src, sizeof(float) * size_t(n));
    } else if (a.rows_contiguous() && !is_plain_float(a.type)) {
        row_to_float(a.type)(src, dst, n);
    } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(a.type, src + i * a.nb[0]);
    }
}

// Walks the elements of a tensor in row-major order from a flat index.
struct ElementWalker {
    const Tensor& t;
    int64_t i[4];
    ElementWalker(const Tensor& tensor, int64_t flat) : t(tensor) {
        for (int d = 0; d < 4; ++d) {
            i[d] = flat % t.ne[d];
            flat /= t.ne[d];
        }
    }
    const char* ptr() const {
        return static_cast<const char*>(t.data) + i[0] * t.nb[0] + i[1] * t.nb[1] + i[2] * t.nb[2] + i[3] * t.nb[3];
    }
    void next() {
        for (int d = 0; d < 4; ++d) {
            if (++i[d] < t.ne[d]) return;
            i[d] = 0;
        }
    }
};

}  // namespace

WorkSize work_size_copy(const Tensor& node) {
    int64_t n = node.ne[0];
    for (int s = 0; s < 2; ++s)
        if (node.src[s]) n = std::max(n, node.src[s]->ne[0]);
    return {0, align_up(sizeof(float) * size_t(n))};
}

void op_cont(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i1 = r % node.ne[1], i2 = (r / node.ne[1]) % node.ne[2], i3 = r / (node.ne[1] * node.ne[2]);
        load_row(a, i1, i2, i3,
                 reinterpret_cast<float*>(static_cast<char*>(node.data) + i1 * node.nb[1] + i2 * node.nb[2] +
                                          i3 * node.nb[3]));
    }
}

void op_cpy(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    MOELITE_ASSERT(node.data != nullptr);
    const bool same_shape = tensor_same_shape(a, node);
    const FromFloatFn convert = node.type == DType::F32 ? nullptr : row_from_float(*ctx.kt, node.type);
    float* row = reinterpret_cast<float*>(ctx.thread_scratch());
    const int64_t n = node.ne[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t i1 = r % node.ne[1], i2 = (r / node.ne[1]) % node.ne[2], i3 = r / (node.ne[1] * node.ne[2]);
        char* dst = static_cast<char*>(node.data) + i1 * node.nb[1] + i2 * node.nb[2] + i3 * node.nb[3];
        // An F32 destination with strided elements is written element by element below.
        const bool direct = node.type == DType::F32 && node.nb[0] == sizeof(float);
        float* target = direct ? reinterpret_cast<float*>(dst) : row;
        if (same_shape) {
            load_row(a, i1, i2, i3, target);
        } else {
            ElementWalker walk(a, r * n);
            for (int64_t i = 0; i < n; ++i, walk.next()) target[i] = load_as_f32(a.type, walk.ptr());
        }
        if (direct) continue;
        if (convert && node.rows_contiguous()) {
            convert(row, dst, n);
        } else {
            for (int64_t i = 0; i < n; ++i) {
                char* p = dst + i * node.nb[0];
                if (node.type == DType::F32) {
                    std::memcpy(p, &row[i], 4);
                } else {
                    const uint16_t h = node.type == DType::F16 ? fp32_to_fp16(row[i]) : fp32_to_bf16(row[i]);
                    std::memcpy(p, &h, 2);
                }
            }
        }
    }
}

void op_concat(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const int dim = concat_dim(node);
    const size_t es = dtype_block_bytes(node.type);
    // n elements of a row from src (elements src_nb0 apart) to dst (node.nb[0] apart).
    auto copy_row = [&node, es](char* dst, const char* src, size_t src_nb0, int64_t n) {
        if (src_nb0 == es && size_t(node.nb[0]) == es) {
            std::memcpy(dst, src, es * size_t(n));
            return;
        }
        for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * node.nb[0], src + i * src_nb0, es);
    };
    auto row_of = [](const Tensor& t, const int64_t* j) {
        return static_cast<const char*>(t.data) + j[1] * t.nb[1] + j[2] * t.nb[2] + j[3] * t.nb[3];
    };
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        int64_t j[4] = {0, r % node.ne[1], (r / node.ne[1]) % node.ne[2], r / (node.ne[1] * node.ne[2])};
        char* dst = static_cast<char*>(node.data) + j[1] * node.nb[1] + j[2] * node.nb[2] + j[3] * node.nb[3];
        if (dim == 0) {
            // The row is a's row, then b's.
            copy_row(dst, row_of(a, j), size_t(a.nb[0]), a.ne[0]);
            copy_row(dst + a.ne[0] * node.nb[0], row_of(b, j), size_t(b.nb[0]), b.ne[0]);
            continue;
        }
        // The whole row comes from one source.
        const Tensor* src = &a;
        if (j[dim] >= a.ne[dim]) {
            src = &b;
            j[dim] -= a.ne[dim];
        }
        copy_row(dst, row_of(*src, j), size_t(src->nb[0]), node.ne[0]);
    }
}

}  // namespace moelite::cpu
