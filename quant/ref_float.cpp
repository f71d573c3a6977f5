// Scalar reference of the plain float formats: F32, F16 (IEEE binary16) and
// BF16. Conversions are core/fp16.h's (round to nearest even; overflow to
// infinity; NaN stays NaN). Dot products accumulate in double, so they are the
// most accurate answer a float kernel can be compared with.
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/ref.h"

namespace moelite::ref {

void to_float_f32(const void* src, float* dst, int64_t n) {
    MOELITE_ASSERT(n >= 0);
    std::memcpy(dst, src, size_t(n) * sizeof(float));
}

void from_float_f32(const float* src, void* dst, int64_t n) {
    MOELITE_ASSERT(n >= 0);
    std::memcpy(dst, src, size_t(n) * sizeof(float));
}

void vec_dot_f32(int64_t n, float* s, const void* x, const void* y) {
    const float* a = static_cast<const float*>(x);
    const float* b = static_cast<const float*>(y);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(a[i]) * double(b[i]);
    *s = float(sum);
}

void to_float_f16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
}

void from_float_f16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

void vec_dot_f16(int64_t n, float* s, const void* x, const void* y) {
    const uint16_t* a = static_cast<const uint16_t*>(x);
    const uint16_t* b = static_cast<const uint16_t*>(y);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(fp16_to_fp32(a[i])) * double(fp16_to_fp32(b[i]));
    *s = float(sum);
}

void to_float_bf16(const void* src, float* dst, int64_t n) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
}

void from_float_bf16(const float* src, void* dst, int64_t n) {
    uint16_t* h = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
}

void vec_dot_bf16(int64_t n, float* s, const void* x, const void* y) {
    const uint16_t* a = static_cast<const uint16_t*>(x);
    const float* b = static_cast<const float*>(y);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += double(bf16_to_fp32(a[i])) * double(b[i]);
    *s = float(sum);
}

}  // namespace moelite::ref

namespace moelite {

void scale_add_f32(int64_t n, float* y, float a, const float* x, float b) {
    for (int64_t i = 0; i < n; ++i) y[i] = a * y[i] + b * x[i];
}

void attn_scores_f32(int64_t rows, int64_t keys, int64_t d, const float* q, size_t q_stride, const float* kt,
                     size_t kt_stride, float* s, size_t s_stride) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < keys; ++j) {
            double sum = 0.0;
            for (int64_t i = 0; i < d; ++i) sum += double(q[size_t(r) * q_stride + i]) * kt[size_t(i) * kt_stride + j];
            s[size_t(r) * s_stride + j] = float(sum);
        }
}

void transpose32_ref(int64_t d, int64_t n, const void* rows, size_t row_stride, void* dst, size_t dst_stride) {
    const auto* src = static_cast<const uint32_t*>(rows);
    auto* out = static_cast<uint32_t*>(dst);
    for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < n; ++j) out[size_t(i) * dst_stride + j] = src[size_t(j) * row_stride + i];
}

void attn_accumulate_f32(int64_t rows, int64_t keys, int64_t dv, const float* p, size_t p_stride, const float* v,
                         size_t v_stride, float* acc, size_t acc_stride) {
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < dv; ++c) {
            double sum = acc[size_t(r) * acc_stride + c];
            for (int64_t j = 0; j < keys; ++j) sum += double(p[size_t(r) * p_stride + j]) * v[size_t(j) * v_stride + c];
            acc[size_t(r) * acc_stride + c] = float(sum);
        }
}

void swiglu_f32(int64_t n, const float* g, const float* u, float* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

float exp_sub_f32(int64_t n, float* x, float m) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - m);
        sum += x[i];
    }
    return float(sum);
}

}  // namespace moelite
