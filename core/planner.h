// Memory planner: gives every intermediate tensor of a graph an offset in one
// arena, reusing memory once a tensor is dead, so that a forward pass
// allocates nothing per token.
//
// Rules:
//  - Time is counted in steps; plan_graph_memory uses node indices in
//    graph.nodes() (step i = node i executes), leaves are defined at step 0.
//  - Storage is needed by every tensor that is not a view (view_src == nullptr)
//    and whose data is not set (or was set by an earlier plan, kTensorPlanned):
//    computed nodes and inputs. Views get none: once bound, their data is
//    their owner's data + view_offset. A cpy node is a view in this sense.
//  - A tensor is live from the step that defines it to the last step that
//    reads it; a read of a view is a read of its owner. kTensorOutput and
//    kTensorInput tensors (or a view of them so flagged) and every planned leaf
//    live for the whole pass. A node never aliases one of its sources (no
//    in-place ops): at each step the new tensors are placed before the dead
//    ones are released.
//  - Offsets come from a best-fit free list over one arena (adjacent free
//    blocks merge; the arena grows at its end when nothing fits); every size is
//    rounded up to the alignment. arena_bytes() is the high-water mark. The
//    result depends only on the sequence of define/use calls: planning the same
//    graph twice gives the same plan.
//
// MemoryPlanner is the general form, fed by explicit define/use calls (the
// scheduler feeds it copies between backends as well as nodes);
// plan_graph_memory feeds it one graph.
#pragma once

#include <cstddef>
#include <functional>
#include <limits>
#include <unordered_map>
#include <vector>

#include "core/graph.h"

namespace moelite {

class Buffer;

inline constexpr int kStepEndOfPass = std::numeric_limits<int>::max();

struct PlanEntry {
    Tensor* tensor = nullptr;
    size_t offset = 0;  // bytes from the arena base, a multiple of the alignment
    size_t size = 0;    // bytes reserved: nbytes() rounded up to the alignment
    int first = 0;      // the step that writes it
    int last = 0;       // the last step that reads it (kStepEndOfPass: never released)
};

class MemoryPlan {
public:
    size_t arena_bytes() const { return arena_bytes_; }
    size_t alignment() const { return alignment_; }
    // In definition order.
    const std::vector<PlanEntry>& entries() const { return entries_; }
    // The entry of t, or nullptr when this plan does not cover t.
    const PlanEntry* find(const Tensor* t) const;

    // Sets data = base + offset, buffer and kTensorPlanned on every planned
    // tensor. base must be aligned and point at arena_bytes() bytes (it may be
    // an opaque device address: it is only offset, never dereferenced).
    void bind(void* base, Buffer* buffer) const;
    // The same, then resolves the data of every view of `graph` (resolve_views).
    void bind(const Graph& graph, void* base, Buffer* buffer) const;

private:
    friend class MemoryPlanner;
    std::vector<PlanEntry> entries_;
    std::unordered_map<const Tensor*, size_t> index_;
    size_t arena_bytes_ = 0;
    size_t alignment_ = 1;
};

class MemoryPlanner {
public:
    explicit MemoryPlanner(size_t alignment);

    // t needs storage from `step` on. whole_pass: never released.
    void define(Tensor* t, int step, bool whole_pass = false);
    // t is read at `step`; a view counts as its owner. Ignored for tensors
    // this planner does not define (weights, tensors of another backend).
    void use(const Tensor* t, int step);
    // t (or its owner) lives to the end of the pass, if defined here.
    void keep(const Tensor* t);

    bool defines(const Tensor* t) const { return index_.count(owner(t)) != 0; }
    MemoryPlan finish() const;

private:
    static const Tensor* owner(const Tensor* t) { return t->view_src ? t->view_src : t; }

    size_t alignment_;
    std::vector<PlanEntry> entries_;  // offsets unset until finish()
    std::unordered_map<const Tensor*, size_t> index_;
};

// Whether t gets storage from a plan (the rule above; the covers predicate of
// plan_graph_memory further restricts it).
bool tensor_needs_storage(const Tensor& t);

// Plans the tensors of `graph` that need storage and satisfy `covers` (all
// when covers is empty).
MemoryPlan plan_graph_memory(const Graph& graph, const std::function<bool(const Tensor&)>& covers,
                             size_t alignment);

// Sets data (owner's data + view_offset, or nullptr) and buffer of every view
// node of `graph`.
void resolve_views(const Graph& graph);

}  // namespace moelite
