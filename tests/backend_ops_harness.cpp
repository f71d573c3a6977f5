// The backend op harness (see backend_ops_harness.h): case inputs, running a
// case on a backend, and the error measure. The table itself is in
// backend_ops_cases.cpp.
#include "tests/backend_ops_harness.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/quant.h"
#include "tests/backend_ops_ref.h"

namespace moelite::test {
namespace {

uint32_t name_seed(const std::string& name) {
    uint32_t h = 2166136261u;  // FNV-1a
    for (unsigned char c : name) h = (h ^ c) * 16777619u;
    return h;
}

// Writes values (ne[0] fastest) into a contiguous leaf of any type.
void encode(const Tensor& leaf, const std::vector<double>& values, std::vector<uint8_t>& bytes) {
    const int64_t n = leaf.nelements();
    MOELITE_ASSERT(int64_t(values.size()) == n && bytes.size() >= leaf.nbytes());
    switch (leaf.type) {
        case DType::F32:
            for (int64_t i = 0; i < n; ++i) {
                const float f = float(values[size_t(i)]);
                std::memcpy(&bytes[size_t(i) * 4], &f, 4);
            }
            return;
        case DType::F16:
        case DType::BF16:
            for (int64_t i = 0; i < n; ++i) {
                const float f = float(values[size_t(i)]);
                const uint16_t h = leaf.type == DType::F16 ? fp32_to_fp16(f) : fp32_to_bf16(f);
                std::memcpy(&bytes[size_t(i) * 2], &h, 2);
            }
            return;
        case DType::I32:
            for (int64_t i = 0; i < n; ++i) {
                const int32_t v = int32_t(values[size_t(i)]);
                std::memcpy(&bytes[size_t(i) * 4], &v, 4);
            }
            return;
        default: {
            const QuantTraits* q = quant_traits(leaf.type);
            MOELITE_ASSERT_MSG(q && q->from_float, "harness: no reference from_float for a leaf type");
            const int64_t row = leaf.ne[0];
            std::vector<float> f(static_cast<size_t>(row));
            for (int64_t r = 0; r < n / row; ++r) {
                for (int64_t i = 0; i < row; ++i) f[size_t(i)] = float(values[size_t(r * row + i)]);
                q->from_float(f.data(), bytes.data() + size_t(r) * leaf.nb[1], row);
            }
        }
    }
}

}  // namespace

Tensor* OpCaseBuilder::leaf(DType type, std::initializer_list<int64_t> ne, LeafFiller filler) {
    Tensor* t = graph_.new_input(type, ne);
    t->name = "leaf" + std::to_string(fillers_.size());
    fillers_[t] = std::move(filler);
    return t;
}

Tensor* OpCaseBuilder::input(DType type, std::initializer_list<int64_t> ne, float scale) {
    return leaf(type, ne, [scale](const Tensor& t, std::vector<uint8_t>& bytes, uint32_t seed) {
        std::mt19937 rng(seed);
        std::normal_distribution<double> dist(0.0, 1.0);
        std::vector<double> v(size_t(t.nelements()));
        for (double& x : v) x = dist(rng) * scale;
        encode(t, v, bytes);
    });
}

Tensor* OpCaseBuilder::weight(DType type, std::initializer_list<int64_t> ne, float scale) {
    Tensor* t = input(type, ne, scale);
    weights_.push_back(t);
    return t;
}

Tensor* OpCaseBuilder::values(DType type, std::initializer_list<int64_t> ne, std::function<double(int64_t)> value) {
    return leaf(type, ne, [value](const Tensor& t, std::vector<uint8_t>& bytes, uint32_t) {
        std::vector<double> v(size_t(t.nelements()));
        for (size_t i = 0; i < v.size(); ++i) v[i] = value(int64_t(i));
        encode(t, v, bytes);
    });
}

Tensor* OpCaseBuilder::ids(std::initializer_list<int64_t> ne, int32_t lo, int32_t hi) {
    return leaf(DType::I32, ne, [lo, hi](const Tensor& t, std::vector<uint8_t>& bytes, uint32_t seed) {
        std::mt19937 rng(seed);
        std::uniform_int_distribution<int32_t> dist(lo, hi - 1);
        std::vector<double> v(size_t(t.nelements()));
        for (double& x : v) x = dist(rng);
        encode(t, v, bytes);
    });
}

Tensor* OpCaseBuilder::distinct_ids(int64_t k, int64_t T, int32_t n) {
    MOELITE_ASSERT(k <= n);
    return leaf(DType::I32, {k, T}, [k, T, n](const Tensor& t, std::vector<uint8_t>& bytes, uint32_t seed) {
        std::mt19937 rng(seed);
        std::vector<int32_t> perm(static_cast<size_t>(n));
        std::vector<double> v;
        for (int64_t col = 0; col < T; ++col) {
            std::iota(perm.begin(), perm.end(), 0);
            std::shuffle(perm.begin(), perm.end(), rng);
            for (int64_t j = 0; j < k; ++j) v.push_back(perm[size_t(j)]);
        }
        encode(t, v, bytes);
    });
}

Tensor* OpCaseBuilder::causal_mask(DType type, int64_t n_kv, int64_t rows, int64_t queries, int64_t fully_masked_row) {
    return leaf(type, {n_kv, rows},
                [n_kv, queries, fully_masked_row](const Tensor& t, std::vector<uint8_t>& bytes, uint32_t seed) {
                    std::mt19937 rng(seed);
                    std::uniform_real_distribution<double> dist(-1.0, 0.0);
                    std::vector<double> v(size_t(t.nelements()));
                    for (int64_t r = 0; r < t.ne[1]; ++r)
                        for (int64_t j = 0; j < n_kv; ++j) {
                            const bool visible = r != fully_masked_row && j <= n_kv - queries + r;
                            v[size_t(r * n_kv + j)] = visible ? dist(rng) : -std::numeric_limits<double>::infinity();
                        }
                    encode(t, v, bytes);
                });
}

PreparedOpCase::PreparedOpCase(const OpCase& c) : case_(c) {
    out_ = case_.build(builder_);
    builder_.graph().build_forward(out_);
    const auto& leaves = builder_.graph().leaves();
    const uint32_t seed = name_seed(case_.name);
    host_.resize(leaves.size());
    for (size_t i = 0; i < leaves.size(); ++i) {
        const Tensor& leaf = *leaves[i];
        auto it = builder_.fillers().find(&leaf);
        MOELITE_ASSERT_MSG(it != builder_.fillers().end(), "harness: a leaf without a filler");
        host_[i].assign(leaf.nbytes(), 0);
        it->second(leaf, host_[i], seed + uint32_t(i) * 7919u);
        leaves[i]->data = host_[i].data();
    }
    resolve_views();
    want_ = ref_compute(*out_);
}

PreparedOpCase::~PreparedOpCase() = default;

void PreparedOpCase::resolve_views() {
    for (Tensor* node : builder_.graph().nodes()) {
        if (!node->view_src) continue;
        node->data = static_cast<char*>(node->view_src->data) + node->view_offset;
        node->buffer = node->view_src->buffer;
    }
}

OpCaseResult PreparedOpCase::run(Backend& backend) {
    OpCaseResult result;
    const auto& nodes = builder_.graph().nodes();
    const auto& leaves = builder_.graph().leaves();
    for (const Tensor* node : nodes) {
        if (op_is_view(node->op)) continue;
        if (!backend.supports_op(*node)) {
            result.detail = std::string("backend declines ") + op_name(node->op);
            return result;
        }
    }
    result.supported = true;

    // One buffer: every leaf, then every computed node that owns memory.
    const size_t align = backend.alignment();
    auto aligned = [align](size_t n) { return (n + align - 1) / align * align; };
    std::vector<Tensor*> owners(leaves.begin(), leaves.end());
    for (Tensor* node : nodes)
        if (!node->view_src) owners.push_back(node);
    size_t total = 0;
    for (const Tensor* t : owners) total += aligned(t->nbytes());
    std::unique_ptr<Buffer> buffer = backend.alloc_buffer(total);
    char* base = static_cast<char*>(buffer->base());
    size_t offset = 0;
    for (Tensor* t : owners) {
        t->data = base + offset;
        t->buffer = buffer.get();
        offset += aligned(t->nbytes());
    }
    resolve_views();
    for (size_t i = 0; i < leaves.size(); ++i) backend.set_tensor(*leaves[i], host_[i].data(), 0, host_[i].size());
    // Weights the backend takes into its own layout, and what they were.
    std::vector<std::unique_ptr<Buffer>> adopted;
    std::vector<std::pair<Tensor*, Tensor>> before;
    for (Tensor* w : builder_.weights()) {
        const Tensor saved = *w;
        if (auto own = backend.adopt_weight(*w, WeightReaders::MulMatOnly)) {
            adopted.push_back(std::move(own));
            before.emplace_back(w, saved);
        }
    }
    auto restore = [&] {
        for (auto& [w, saved] : before) *w = saved;
    };
    for (const Tensor* node : nodes) {
        if (!op_is_view(node->op) && !backend.supports_op(*node)) {
            restore();
            result.supported = false;
            result.detail = std::string("backend declines ") + op_name(node->op) + " over its own weight layout";
            return result;
        }
    }
    result.adopted = int(adopted.size());

    backend.compute(nodes);
    backend.synchronize();
    restore();

    std::vector<uint8_t> bytes(out_->nbytes());
    backend.get_tensor(*out_, bytes.data(), 0, bytes.size());
    Tensor host_out = *out_;
    host_out.data = bytes.data();
    const std::vector<double> got = ref_values(host_out);

    // Back to host memory, so the case can be run again or inspected.
    for (size_t i = 0; i < leaves.size(); ++i) {
        leaves[i]->data = host_[i].data();
        leaves[i]->buffer = nullptr;
    }
    resolve_views();

    result.nmse = nmse(got, want_);
    result.passed = result.nmse <= case_.max_nmse;  // false for NaN
    if (!result.passed) {
        size_t worst = 0;
        for (size_t i = 0; i < got.size(); ++i)
            if (!(std::fabs(got[i] - want_[i]) <= std::fabs(got[worst] - want_[worst]))) worst = i;
        result.detail = "nmse " + std::to_string(result.nmse) + " > " + std::to_string(case_.max_nmse) +
                        "; worst element " + std::to_string(worst) + ": got " + std::to_string(got[worst]) +
                        ", want " + std::to_string(want_[worst]);
    }
    return result;
}

double nmse(const std::vector<double>& got, const std::vector<double>& want) {
    if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double d = got[i] - want[i];
        err += d * d;
        ref += want[i] * want[i];
    }
    return ref > 0.0 ? err / ref : err;
}

}  // namespace moelite::test
