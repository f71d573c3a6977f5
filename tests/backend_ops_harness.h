// The backend op test harness: a table of op cases (each op, each type it
// takes, awkward shapes, views, broadcasts, masks, GQA), each checked on any
// Backend against the independent double-precision references of
// backend_ops_ref.h, with a declared tolerance per case as a normalised mean
// squared error, NMSE = sum((got - want)^2) / sum(want^2).
//
// Backend-agnostic: a case is built with the core/graph.h builders, its
// inputs are generated on the host (deterministic per case name), copied into
// one buffer of the backend under test with set_tensor, computed with
// compute() and read back with get_tensor. The CPU suite (test_backend_ops.cpp)
// runs every case on every ISA and thread count; a GPU backend's suite calls
// the same PreparedOpCase::run on its own Backend.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/graph.h"

namespace moelite::test {

// Fills a leaf's bytes (contiguous, leaf.nbytes() long) on the host.
using LeafFiller = std::function<void(const Tensor& leaf, std::vector<uint8_t>& bytes, uint32_t seed)>;

// What a case's build function uses: the graph, and leaves with their data.
class OpCaseBuilder {
public:
    Graph& graph() { return graph_; }
    // N(0, 1) * scale values (quantized types: reference from_float of them).
    Tensor* input(DType type, std::initializer_list<int64_t> ne, float scale = 1.0f);
    // The same, as a model weight: once its data is set, it is offered to the
    // backend (Backend::adopt_weight), which may keep it in its own layout.
    Tensor* weight(DType type, std::initializer_list<int64_t> ne, float scale = 1.0f);
    const std::vector<Tensor*>& weights() const { return weights_; }
    // value(flat index) for every element, converted to the leaf's type (I32: truncated).
    Tensor* values(DType type, std::initializer_list<int64_t> ne, std::function<double(int64_t)> value);
    // I32 uniform in [lo, hi).
    Tensor* ids(std::initializer_list<int64_t> ne, int32_t lo, int32_t hi);
    // For each column of ids [k, T]: k distinct values in [0, n), in random order.
    Tensor* distinct_ids(int64_t k, int64_t T, int32_t n);
    // A causal attention mask [n_kv, rows] for the last `queries` positions of n_kv
    // (row t sees keys j <= n_kv - queries + t; the rest -inf), small random
    // values elsewhere; rows >= queries are padding. fully_masked_row >= 0
    // masks that row entirely.
    Tensor* causal_mask(DType type, int64_t n_kv, int64_t rows, int64_t queries, int64_t fully_masked_row = -1);

    const std::map<const Tensor*, LeafFiller>& fillers() const { return fillers_; }

private:
    Tensor* leaf(DType type, std::initializer_list<int64_t> ne, LeafFiller filler);
    Graph graph_;
    std::map<const Tensor*, LeafFiller> fillers_;
    std::vector<Tensor*> weights_;
};

struct OpCase {
    std::string name;  // unique; also seeds the inputs
    double max_nmse;   // tolerance against the reference; 0 = exact
    std::function<Tensor*(OpCaseBuilder&)> build;
};

struct OpCaseResult {
    bool supported = false;  // false: the backend declined a node (supports_op)
    int adopted = 0;         // weights the backend kept in its own layout (adopt_weight)
    double nmse = 0.0;
    bool passed = false;
    std::string detail;  // what went wrong, for the failure message
};

// One case built once, its inputs generated and its reference computed;
// run() may be called on any number of backends.
class PreparedOpCase {
public:
    explicit PreparedOpCase(const OpCase& c);
    ~PreparedOpCase();
    OpCaseResult run(Backend& backend);
    const OpCase& op_case() const { return case_; }
    const Tensor& output() const { return *out_; }

private:
    void point_leaves_at(char* base, Buffer* buffer);
    void resolve_views();

    OpCase case_;
    OpCaseBuilder builder_;
    Tensor* out_ = nullptr;
    std::vector<std::vector<uint8_t>> host_;  // per leaf, in graph().leaves() order
    std::vector<double> want_;
};

// The table: every op of core/graph.h with the types the quant tables can
// compute on in this build.
std::vector<OpCase> backend_op_cases();

double nmse(const std::vector<double>& got, const std::vector<double>& want);

}  // namespace moelite::test
