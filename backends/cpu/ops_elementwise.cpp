// Row-wise and elementwise kernels: get_rows, add, mul (with broadcast), scale,
// silu, sigmoid, swiglu. Semantics in core/graph.h.
//
// Every kernel splits the output rows (ne[1..3] flattened) across threads and
// reads sources through their byte strides; a source whose rows are
// contiguous (nb[0] == element size) takes the plain loop.
#include <cmath>
#include <cstring>

#include "backends/cpu/ops.h"
#include "core/error.h"
#include "quant/quant.h"

namespace moelite::cpu {
namespace {

// (i1, i2, i3) of flat row index r of a tensor with ne.
inline void unravel_row(const Tensor& t, int64_t r, int64_t* i1, int64_t* i2, int64_t* i3) {
    *i1 = r % t.ne[1];
    r /= t.ne[1];
    *i2 = r % t.ne[2];
    *i3 = r / t.ne[2];
}

inline const char* row_ptr(const Tensor& t, int64_t i1, int64_t i2, int64_t i3) {
    return static_cast<const char*>(t.data) + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}
inline char* row_ptr_mut(const Tensor& t, int64_t i1, int64_t i2, int64_t i3) {
    return static_cast<char*>(t.data) + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

inline float load_f32(const char* row, size_t nb0, int64_t i) {
    float v;
    std::memcpy(&v, row + i * nb0, 4);
    return v;
}

inline float silu_f(float x) { return x / (1.0f + std::exp(-x)); }
inline float sigmoid_f(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// out = f(a) elementwise, out rows contiguous F32, a F32 of the same shape.
template <typename F>
void unary_rows(const Tensor& node, const OpContext& ctx, F f) {
    const Tensor& a = *node.src[0];
    const int64_t n = node.ne[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        int64_t i1, i2, i3;
        unravel_row(node, r, &i1, &i2, &i3);
        const char* src = row_ptr(a, i1, i2, i3);
        float* dst = reinterpret_cast<float*>(row_ptr_mut(node, i1, i2, i3));
        if (a.nb[0] == sizeof(float)) {
            const float* s = reinterpret_cast<const float*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = f(s[i]);
        } else {
            for (int64_t i = 0; i < n; ++i) dst[i] = f(load_f32(src, a.nb[0], i));
        }
    }
}

// out = f(a, b) with b broadcast over a (a.ne[i] % b.ne[i] == 0); contiguous
// rows of the same length go to `row_kernel` where one is given.
template <typename F>
void binary_rows(const Tensor& node, const OpContext& ctx, F f, SwigluFn row_kernel = nullptr) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const int64_t n = node.ne[0], nb_0 = b.ne[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        int64_t i1, i2, i3;
        unravel_row(node, r, &i1, &i2, &i3);
        const char* pa = row_ptr(a, i1, i2, i3);
        const char* pb = row_ptr(b, i1 % b.ne[1], i2 % b.ne[2], i3 % b.ne[3]);
        float* dst = reinterpret_cast<float*>(row_ptr_mut(node, i1, i2, i3));
        if (a.nb[0] == sizeof(float) && b.nb[0] == sizeof(float) && nb_0 == n) {
            const float* sa = reinterpret_cast<const float*>(pa);
            const float* sb = reinterpret_cast<const float*>(pb);
            if (row_kernel)
                row_kernel(n, sa, sb, dst);
            else
                for (int64_t i = 0; i < n; ++i) dst[i] = f(sa[i], sb[i]);
        } else if (nb_0 == 1) {
            // One b per row (MoE: each expert's output times its weight).
            const float y = load_f32(pb, b.nb[0], 0);
            if (a.nb[0] == sizeof(float)) {
                const float* sa = reinterpret_cast<const float*>(pa);
                for (int64_t i = 0; i < n; ++i) dst[i] = f(sa[i], y);
            } else {
                for (int64_t i = 0; i < n; ++i) dst[i] = f(load_f32(pa, a.nb[0], i), y);
            }
        } else {
            for (int64_t i = 0; i < n; ++i) dst[i] = f(load_f32(pa, a.nb[0], i), load_f32(pb, b.nb[0], i % nb_0));
        }
    }
}

}  // namespace

void op_get_rows(const Tensor& node, const OpContext& ctx) {
    const Tensor& table = *node.src[0];
    const Tensor& ids = *node.src[1];
    const ToFloatFn to_float = row_to_float(*ctx.kt, table.type);
    MOELITE_ASSERT(to_float != nullptr);
    const int64_t n = node.ne[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        int64_t i1, i2, i3;
        unravel_row(node, r, &i1, &i2, &i3);
        int32_t id;
        std::memcpy(&id, row_ptr(ids, i2, i3, 0) + i1 * ids.nb[0], 4);
        MOELITE_ASSERT_MSG(id >= 0 && id < table.ne[1], "get_rows: row id out of range");
        float* dst = reinterpret_cast<float*>(row_ptr_mut(node, i1, i2, i3));
        to_float(row_ptr(table, id, i2, i3), dst, n);
    }
}

void op_add(const Tensor& node, const OpContext& ctx) {
    binary_rows(node, ctx, [](float x, float y) { return x + y; });
}

void op_mul(const Tensor& node, const OpContext& ctx) {
    binary_rows(node, ctx, [](float x, float y) { return x * y; });
}

void op_div(const Tensor& node, const OpContext& ctx) {
    binary_rows(node, ctx, [](float x, float y) { return x / y; });
}

void op_sum_rows(const Tensor& node, const OpContext& ctx) {
    const Tensor& a = *node.src[0];
    int64_t r0, r1;
    split_range(node.nrows(), ctx.ith, ctx.nth, &r0, &r1);
    for (int64_t r = r0; r < r1; ++r) {
        int64_t i1, i2, i3;
        unravel_row(node, r, &i1, &i2, &i3);
        const char* pa = row_ptr(a, i1, i2, i3);
        double sum = 0.0;
        for (int64_t i = 0; i < a.ne[0]; ++i) sum += load_f32(pa, a.nb[0], i);
        *reinterpret_cast<float*>(row_ptr_mut(node, i1, i2, i3)) = float(sum);
    }
}

void op_scale(const Tensor& node, const OpContext& ctx) {
    const float s = scale_param_s(node), bias = scale_param_bias(node);
    unary_rows(node, ctx, [s, bias](float x) { return x * s + bias; });
}

void op_silu(const Tensor& node, const OpContext& ctx) { unary_rows(node, ctx, silu_f); }

void op_sigmoid(const Tensor& node, const OpContext& ctx) { unary_rows(node, ctx, sigmoid_f); }

void op_swiglu(const Tensor& node, const OpContext& ctx) {
    binary_rows(node, ctx, [](float g, float u) { return silu_f(g) * u; }, ctx.kt->swiglu);
}

}  // namespace moelite::cpu
