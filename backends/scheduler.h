// Scheduler: places the nodes of a graph on backends, cuts the order into
// splits, copies tensors across backend boundaries, plans one arena per
// backend, and computes. It knows backends only through backends/backend.h.
//
// Placement, for each node in graph order (first rule that applies):
//  1. a view (op_is_view) goes with the memory it views; it computes nothing;
//  2. a node that writes into existing memory (cpy: view_src set) runs on the
//     backend of that memory; when that backend cannot compute it and the
//     memory is host-visible, the host backend writes it directly;
//  3. an explicit override (set_override) wins when its backend supports_op;
//  4. the backend of the buffer holding one of its weight sources (a source,
//     or the owner of a source view, flagged kTensorWeight; first in src
//     order), when that backend is one of ours and supports_op;
//  5. the first backend in priority order that supports_op.
// No backend supporting a node is an error (moelite::Error naming the op).
//
// Where tensors live: a computed node in its backend's arena; a view in its
// owner's memory; a weight (or any leaf with data) in its buffer, or in plain
// host memory when it has none; a leaf that needs storage (an input the
// caller fills) in the host backend's arena, so the caller writes it through
// `data`. Outputs stay where they were computed: read them with
// t->buffer->backend().get_tensor() (or through data when t->buffer->is_host()).
//
// Reading rule: a backend reads directly what lives on it; the host backend
// (the last in the list: it must support every op the graph holds) also reads
// directly any host-visible memory (Buffer::is_host(), or no buffer at all)
// except another backend's arena. Every other source of a split gets a copy
// tensor in the split's backend (same type, shape and strides as the source,
// nbytes() of the source copied), made at the start of the split, one per
// (tensor, backend) per pass and reused by later splits on that backend --
// unless a cpy node rewrote the source's memory in between, which forces a
// fresh copy. During compute the nodes' src[] point at the copies; the graph
// is restored after each split.
//
// Splits are maximal runs of consecutive computed nodes on one backend (views
// do not cut a run). compute() runs them in order: the split's copies (direct
// when either side is host memory, else through a host staging buffer), then
// backend->compute(its computed nodes), then backend->synchronize().
//
// A plan is kept until the graph changes (another Graph object, or new nodes
// appended) or replan()/set_override() is called.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"
#include "core/graph.h"
#include "core/planner.h"

namespace moelite {

struct SchedulerStats {
    size_t n_splits = 0;     // splits of the current plan
    size_t n_copies = 0;     // copies per compute in the current plan
    size_t copy_bytes = 0;   // bytes copied by the last compute
    size_t n_plans = 0;      // plans made so far
    size_t n_computes = 0;   // compute() calls so far
};

class Scheduler {
public:
    // One copy of a tensor into another backend, made at the start of a split.
    struct Copy {
        Tensor* src = nullptr;  // the tensor as the graph has it (node, view or leaf)
        Tensor* dst = nullptr;  // owned by the scheduler, planned in the split backend's arena
    };
    // A source slot redirected to a copy while its split computes.
    struct Patch {
        Tensor* node = nullptr;
        int slot = 0;
        Tensor* copy = nullptr;
    };
    struct Split {
        Backend* backend = nullptr;
        size_t begin = 0, end = 0;    // range in graph.nodes(), views included
        std::vector<Tensor*> nodes;   // the computed nodes of the range, in order
        std::vector<Copy> copies;     // made before the split computes
        std::vector<Patch> patches;
    };

    // backends in priority order; the last is the host backend.
    explicit Scheduler(std::vector<Backend*> backends);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Runs `node` on `backend` when it supports it (placement rule 3).
    void set_override(const Tensor* node, Backend* backend);
    void clear_overrides();
    // Forces the next plan() or compute() to plan again.
    void replan() { planned_graph_id_ = 0; }

    // Places, splits, plans and allocates, unless the plan for this graph is current.
    void plan(Graph& graph);
    // plan(graph), then computes every split in order.
    void compute(Graph& graph);

    // Where a node runs (a view: where its memory lives); nullptr before planning
    // or for tensors outside the planned graph.
    Backend* backend_of(const Tensor* node) const;
    const std::vector<Split>& splits() const { return splits_; }
    const SchedulerStats& stats() const { return stats_; }
    // Arena size planned for a backend (0 when it holds no intermediates).
    size_t arena_bytes(const Backend* backend) const;
    Backend* host_backend() const { return backends_.back(); }

private:
    struct Location {
        Backend* backend = nullptr;  // nullptr: plain host memory, no buffer
        bool host_visible = false;
        bool arena = false;          // an intermediate planned by us on `backend`
    };

    bool is_ours(const Backend* b) const;
    Location location_of(const Tensor* t) const;
    bool reads_directly(const Backend* b, const Tensor* t) const;
    Backend* place(const Tensor* node) const;
    void build_splits(Graph& graph);
    void plan_memory(Graph& graph);
    void copy_tensor(const Copy& copy, Backend& to);

    std::vector<Backend*> backends_;
    std::unordered_map<const Tensor*, Backend*> overrides_;

    uint64_t planned_graph_id_ = 0;
    size_t planned_node_count_ = 0;
    std::unordered_map<const Tensor*, Backend*> placement_;  // computed nodes and views
    std::vector<Split> splits_;
    std::deque<Tensor> copy_tensors_;
    std::vector<MemoryPlan> plans_;                 // one per backend, same order
    std::vector<std::unique_ptr<Buffer>> arenas_;   // one per backend (null when unused)
    std::vector<char> staging_;
    SchedulerStats stats_;
};

}  // namespace moelite
