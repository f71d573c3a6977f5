// Naive double-precision references of the graph ops (see backend_ops_ref.h).
// Written for clarity over speed: element by element through byte strides.
#include "tests/backend_ops_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "core/error.h"
#include "core/fp16.h"
#include "core/graph.h"
#include "quant/quant.h"

namespace moelite::test {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

const char* elem_ptr(const Tensor& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return static_cast<const char*>(t.data) + i0 * t.nb[0] + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3];
}

double plain_element(const Tensor& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    const char* p = elem_ptr(t, i0, i1, i2, i3);
    switch (t.type) {
        case DType::F32: {
            float v;
            std::memcpy(&v, p, 4);
            return v;
        }
        case DType::F16:
        case DType::BF16: {
            uint16_t h;
            std::memcpy(&h, p, 2);
            return t.type == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
        }
        case DType::I32: {
            int32_t v;
            std::memcpy(&v, p, 4);
            return v;
        }
        default: MOELITE_ASSERT_MSG(false, "reference: element of an unexpected type");
    }
    return 0;
}

int64_t index_at(const Tensor& t, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) {
    return int64_t(plain_element(t, i0, i1, i2, i3));
}

size_t flat(const Tensor& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return size_t(i0 + t.ne[0] * (i1 + t.ne[1] * (i2 + t.ne[2] * i3)));
}

std::vector<double> out_for(const Tensor& node) { return std::vector<double>(size_t(node.nelements()), 0.0); }

// Every (i1, i2, i3) of a tensor's rows.
template <typename F>
void for_rows(const Tensor& t, F f) {
    for (int64_t i3 = 0; i3 < t.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < t.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < t.ne[1]; ++i1) f(i1, i2, i3);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

DType vec_dot_type(DType w) {
    const QuantTraits* q = quant_traits(w);
    MOELITE_ASSERT(q != nullptr);
    return q->vec_dot_type;
}

// ---- ops -------------------------------------------------------------------

std::vector<double> ref_get_rows(const Tensor& node) {
    const Tensor& table = *node.src[0];
    const Tensor& ids = *node.src[1];
    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        const auto row = ref_row(table, index_at(ids, i1, i2, i3), i2, i3);
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) out[flat(node, i0, i1, i2, i3)] = row[size_t(i0)];
    });
    return out;
}

std::vector<double> ref_mul_mat(const Tensor& node) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const DType vdt = vec_dot_type(w.type);
    auto out = out_for(node);
    const int64_t r2 = x.ne[2] / w.ne[2], r3 = x.ne[3] / w.ne[3];
    for_rows(x, [&](int64_t n, int64_t i2, int64_t i3) {
        const auto xr = ref_round_trip(vdt, ref_row(x, n, i2, i3));
        for (int64_t m = 0; m < w.ne[1]; ++m)
            out[flat(node, m, n, i2, i3)] = dot(ref_row(w, m, i2 / r2, i3 / r3), xr);
    });
    return out;
}

std::vector<double> ref_mul_mat_id(const Tensor& node) {
    const Tensor& w = *node.src[0];
    const Tensor& x = *node.src[1];
    const Tensor& ids = *node.src[2];
    const DType vdt = vec_dot_type(w.type);
    auto out = out_for(node);
    for (int64_t t = 0; t < ids.ne[1]; ++t)
        for (int64_t j = 0; j < ids.ne[0]; ++j) {
            const int64_t e = index_at(ids, j, t);
            const auto xr = ref_round_trip(vdt, ref_row(x, j % x.ne[1], t, 0));
            for (int64_t m = 0; m < w.ne[1]; ++m) out[flat(node, m, j, t, 0)] = dot(ref_row(w, m, e, 0), xr);
        }
    return out;
}

template <typename F>
std::vector<double> ref_binary(const Tensor& node, F f) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0)
            out[flat(node, i0, i1, i2, i3)] =
                f(plain_element(a, i0, i1, i2, i3),
                  plain_element(b, i0 % b.ne[0], i1 % b.ne[1], i2 % b.ne[2], i3 % b.ne[3]));
    });
    return out;
}

template <typename F>
std::vector<double> ref_unary(const Tensor& node, F f) {
    const Tensor& a = *node.src[0];
    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0)
            out[flat(node, i0, i1, i2, i3)] = f(plain_element(a, i0, i1, i2, i3));
    });
    return out;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

std::vector<double> ref_rms_norm(const Tensor& node) {
    const Tensor& a = *node.src[0];
    const double eps = rms_norm_eps(node);
    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        const auto row = ref_row(a, i1, i2, i3);
        const double rms = std::sqrt(dot(row, row) / double(row.size()) + eps);
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) out[flat(node, i0, i1, i2, i3)] = row[size_t(i0)] / rms;
    });
    return out;
}

// RoPE with YaRN, in double: the angle of pair i at position p, and the magnitude.
std::vector<double> ref_rope(const Tensor& node) {
    const Tensor& a = *node.src[0];
    const Tensor& pos = *node.src[1];
    const Tensor* ff = node.src[2];
    const RopeParams p = rope_params(node);
    const int half = p.n_dims / 2;
    // YaRN's correction range, in pair indices: where the wavelength 2 pi / theta_i
    // fits beta times into the original context.
    auto corr_dim = [&](double beta) {
        return p.n_dims * std::log(p.n_ctx_orig / (beta * 2.0 * std::numbers::pi)) / (2.0 * std::log(p.freq_base));
    };
    const double low = std::max(0.0, std::floor(corr_dim(p.beta_fast)));
    const double high = std::min(double(p.n_dims - 1), std::ceil(corr_dim(p.beta_slow)));
    double magnitude = p.attn_factor;
    if (p.ext_factor != 0.0f) magnitude *= 1.0 + 0.1 * std::log(1.0 / p.freq_scale);

    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        const auto row = ref_row(a, i1, i2, i3);
        std::vector<double> res = row;
        const double position = double(index_at(pos, i2));
        for (int i = 0; i < half; ++i) {
            double inv_freq = std::pow(double(p.freq_base), -2.0 * i / p.n_dims);
            if (ff) inv_freq /= plain_element(*ff, i, 0, 0, 0);
            const double extrap = position * inv_freq;
            const double interp = p.freq_scale * extrap;
            double theta = interp;
            if (p.ext_factor != 0.0f) {
                const double y = (i - low) / std::max(0.001, high - low);
                const double mix = (1.0 - std::clamp(y, 0.0, 1.0)) * p.ext_factor;
                theta = interp * (1.0 - mix) + extrap * mix;
            }
            const double c = std::cos(theta) * magnitude, s = std::sin(theta) * magnitude;
            const size_t j0 = p.mode == RopeMode::Neox ? size_t(i) : size_t(2 * i);
            const size_t j1 = p.mode == RopeMode::Neox ? size_t(i + half) : size_t(2 * i + 1);
            res[j0] = row[j0] * c - row[j1] * s;
            res[j1] = row[j0] * s + row[j1] * c;
        }
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) out[flat(node, i0, i1, i2, i3)] = res[size_t(i0)];
    });
    return out;
}

// softmax of v in place; all -inf gives zeros.
void softmax(std::vector<double>& v) {
    const double m = *std::max_element(v.begin(), v.end());
    if (m == kNegInf) {
        std::fill(v.begin(), v.end(), 0.0);
        return;
    }
    double sum = 0;
    for (double& x : v) sum += (x = std::exp(x - m));
    for (double& x : v) x /= sum;
}

std::vector<double> ref_soft_max(const Tensor& node) {
    const Tensor& a = *node.src[0];
    const Tensor* mask = node.src[1];
    const double s = soft_max_scale(node);
    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        auto row = ref_row(a, i1, i2, i3);
        for (int64_t i0 = 0; i0 < a.ne[0]; ++i0) {
            row[size_t(i0)] *= s;
            if (mask) row[size_t(i0)] += plain_element(*mask, i0, i1, 0, 0);
        }
        softmax(row);
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) out[flat(node, i0, i1, i2, i3)] = row[size_t(i0)];
    });
    return out;
}

std::vector<double> ref_argsort_top_k(const Tensor& node) {
    const Tensor& a = *node.src[0];
    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        const auto row = ref_row(a, i1, i2, i3);
        std::vector<int64_t> idx(row.size());
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
        auto by_value = [&](int64_t x, int64_t y) { return row[size_t(x)] > row[size_t(y)]; };
        const int64_t n_group = top_k_groups(node);
        if (n_group > 1) {
            // Keep only the entries of the best groups, scored by their top entries.
            const int64_t per = int64_t(row.size()) / n_group, score_n = top_k_group_score_n(node);
            std::vector<std::pair<double, int64_t>> groups;
            for (int64_t g = 0; g < n_group; ++g) {
                std::vector<double> v(row.begin() + g * per, row.begin() + (g + 1) * per);
                std::sort(v.begin(), v.end(), std::greater<double>());
                double s = 0;
                for (int64_t j = 0; j < score_n; ++j) s += v[size_t(j)];
                groups.push_back({-s, g});
            }
            std::sort(groups.begin(), groups.end());
            idx.clear();
            for (int64_t gi = 0; gi < top_k_groups_kept(node); ++gi)
                for (int64_t j = 0; j < per; ++j) idx.push_back(groups[size_t(gi)].second * per + j);
            std::sort(idx.begin(), idx.end());
        }
        std::stable_sort(idx.begin(), idx.end(), by_value);
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) out[flat(node, i0, i1, i2, i3)] = double(idx[size_t(i0)]);
    });
    return out;
}

std::vector<double> ref_concat(const Tensor& node) {
    const Tensor& a = *node.src[0];
    const Tensor& b = *node.src[1];
    const int dim = concat_dim(node);
    auto out = out_for(node);
    for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
        for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) {
            int64_t j[4] = {i0, i1, i2, i3};
            const bool from_a = j[dim] < a.ne[dim];
            if (!from_a) j[dim] -= a.ne[dim];
            out[flat(node, i0, i1, i2, i3)] = plain_element(from_a ? a : b, j[0], j[1], j[2], j[3]);
        }
    });
    return out;
}

// cpy: the source's elements in logical order, each destination row rounded
// through the destination type.
std::vector<double> ref_cpy(const Tensor& node) {
    const auto src = ref_values(*node.src[0]);
    std::vector<double> out(src.size());
    const size_t n = size_t(node.ne[0]);
    for (size_t r = 0; r < src.size() / n; ++r) {
        const std::vector<double> row(src.begin() + ptrdiff_t(r * n), src.begin() + ptrdiff_t((r + 1) * n));
        const auto rounded = ref_round_trip(node.type, row);
        std::copy(rounded.begin(), rounded.end(), out.begin() + ptrdiff_t(r * n));
    }
    return out;
}

std::vector<double> ref_flash_attn(const Tensor& node) {
    const Tensor& q = *node.src[0];
    const Tensor& k = *node.src[1];
    const Tensor& v = *node.src[2];
    const Tensor* mask = node.src[3];
    const double s = flash_attn_scale(node);
    const DType vdt = vec_dot_type(k.type);
    const int64_t group = q.ne[1] / k.ne[2];
    auto out = out_for(node);
    for (int64_t t = 0; t < q.ne[2]; ++t)
        for (int64_t h = 0; h < q.ne[1]; ++h) {
            const int64_t kvh = h / group;
            const auto qr = ref_round_trip(vdt, ref_row(q, h, t, 0));
            std::vector<double> scores(size_t(k.ne[1]));
            for (int64_t j = 0; j < k.ne[1]; ++j) {
                scores[size_t(j)] = dot(ref_row(k, j, kvh, 0), qr) * s;
                if (mask) scores[size_t(j)] += plain_element(*mask, j, t, 0, 0);
            }
            softmax(scores);
            for (int64_t j = 0; j < k.ne[1]; ++j) {
                if (scores[size_t(j)] == 0.0) continue;
                const auto vr = ref_row(v, j, kvh, 0);
                for (int64_t d = 0; d < v.ne[0]; ++d) out[flat(node, d, h, t, 0)] += scores[size_t(j)] * vr[size_t(d)];
            }
        }
    return out;
}

}  // namespace

std::vector<double> ref_row(const Tensor& t, int64_t i1, int64_t i2, int64_t i3) {
    std::vector<double> row(size_t(t.ne[0]));
    if (dtype_is_quantized(t.type)) {
        const QuantTraits* q = quant_traits(t.type);
        MOELITE_ASSERT(q != nullptr && q->to_float != nullptr && t.rows_contiguous());
        std::vector<float> f(size_t(t.ne[0]));
        q->to_float(elem_ptr(t, 0, i1, i2, i3), f.data(), t.ne[0]);
        std::copy(f.begin(), f.end(), row.begin());
    } else {
        for (int64_t i0 = 0; i0 < t.ne[0]; ++i0) row[size_t(i0)] = plain_element(t, i0, i1, i2, i3);
    }
    return row;
}

std::vector<double> ref_values(const Tensor& t) {
    std::vector<double> out(size_t(t.nelements()));
    for_rows(t, [&](int64_t i1, int64_t i2, int64_t i3) {
        const auto row = ref_row(t, i1, i2, i3);
        std::copy(row.begin(), row.end(), out.begin() + ptrdiff_t(flat(t, 0, i1, i2, i3)));
    });
    return out;
}

std::vector<double> ref_round_trip(DType type, const std::vector<double>& x) {
    if (type == DType::F32) {
        std::vector<double> r(x.size());
        for (size_t i = 0; i < x.size(); ++i) r[i] = float(x[i]);
        return r;
    }
    const QuantTraits* q = quant_traits(type);
    MOELITE_ASSERT(q != nullptr && q->from_float != nullptr && q->to_float != nullptr);
    std::vector<float> f(x.begin(), x.end()), back(x.size());
    std::vector<uint8_t> bytes(dtype_row_bytes(type, int64_t(x.size())));
    q->from_float(f.data(), bytes.data(), int64_t(x.size()));
    q->to_float(bytes.data(), back.data(), int64_t(x.size()));
    return std::vector<double>(back.begin(), back.end());
}

std::vector<double> ref_compute(const Tensor& node) {
    switch (node.op) {
        case Op::GetRows: return ref_get_rows(node);
        case Op::MulMat: return ref_mul_mat(node);
        case Op::MulMatId: return ref_mul_mat_id(node);
        case Op::Add: return ref_binary(node, [](double a, double b) { return a + b; });
        case Op::Mul: return ref_binary(node, [](double a, double b) { return a * b; });
        case Op::Div: return ref_binary(node, [](double a, double b) { return a / b; });
        case Op::SumRows: {
            auto out = out_for(node);
            for_rows(node, [&](int64_t i1, int64_t i2, int64_t i3) {
                double s = 0;
                for (double v : ref_row(*node.src[0], i1, i2, i3)) s += v;
                out[flat(node, 0, i1, i2, i3)] = s;
            });
            return out;
        }
        case Op::Scale: {
            const double s = scale_param_s(node), bias = scale_param_bias(node);
            return ref_unary(node, [&](double a) { return a * s + bias; });
        }
        case Op::RmsNorm: return ref_rms_norm(node);
        case Op::Rope: return ref_rope(node);
        case Op::SoftMax: return ref_soft_max(node);
        case Op::Silu: return ref_unary(node, silu);
        case Op::Sigmoid: return ref_unary(node, [](double a) { return 1.0 / (1.0 + std::exp(-a)); });
        case Op::Swiglu: return ref_binary(node, [](double g, double u) { return silu(g) * u; });
        case Op::ArgsortTopK: return ref_argsort_top_k(node);
        case Op::Concat: return ref_concat(node);
        case Op::Cont: return ref_values(*node.src[0]);
        case Op::Cpy: return ref_cpy(node);
        case Op::FlashAttn: return ref_flash_attn(node);
        default: MOELITE_ASSERT_MSG(false, "reference: op without a reference");
    }
    return {};
}

}  // namespace moelite::test
