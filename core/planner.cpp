// Memory planner: liveness from define/use events, then a best-fit free list
// over one arena. The rules are in core/planner.h.
#include "core/planner.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace moelite {

namespace {

size_t align_up(size_t n, size_t alignment) { return (n + alignment - 1) / alignment * alignment; }

// Best-fit allocation over one growing arena. Free blocks are kept by offset
// and merged with their neighbours, so the free list is the same whatever
// order blocks are released in.
class ArenaAllocator {
public:
    size_t allocate(size_t size) {
        auto best = free_.end();
        for (auto it = free_.begin(); it != free_.end(); ++it)
            if (it->second >= size && (best == free_.end() || it->second < best->second)) best = it;
        if (best != free_.end()) {
            const size_t offset = best->first;
            const size_t rest = best->second - size;
            free_.erase(best);
            if (rest) free_.emplace(offset + size, rest);
            return offset;
        }
        // Nothing fits: grow the arena, starting inside a free block at its end.
        size_t offset = top_;
        if (!free_.empty()) {
            auto last = std::prev(free_.end());
            if (last->first + last->second == top_) {
                offset = last->first;
                free_.erase(last);
            }
        }
        top_ = offset + size;
        high_water_ = std::max(high_water_, top_);
        return offset;
    }

    void release(size_t offset, size_t size) {
        auto [it, inserted] = free_.emplace(offset, size);
        MOELITE_ASSERT(inserted);
        auto next = std::next(it);
        if (next != free_.end()) {
            MOELITE_ASSERT(offset + size <= next->first);
            if (offset + size == next->first) {
                it->second += next->second;
                free_.erase(next);
            }
        }
        if (it != free_.begin()) {
            auto prev = std::prev(it);
            MOELITE_ASSERT(prev->first + prev->second <= offset);
            if (prev->first + prev->second == offset) {
                prev->second += it->second;
                free_.erase(it);
            }
        }
    }

    size_t high_water() const { return high_water_; }

private:
    std::map<size_t, size_t> free_;  // offset -> size
    size_t top_ = 0;
    size_t high_water_ = 0;
};

}  // namespace

// ---------------------------------------------------------------- plan

const PlanEntry* MemoryPlan::find(const Tensor* t) const {
    auto it = index_.find(t);
    return it == index_.end() ? nullptr : &entries_[it->second];
}

void MemoryPlan::bind(void* base, Buffer* buffer) const {
    MOELITE_ASSERT(base != nullptr || entries_.empty());
    for (const PlanEntry& e : entries_) {
        e.tensor->data = static_cast<char*>(base) + e.offset;
        e.tensor->buffer = buffer;
        e.tensor->flags |= kTensorPlanned;
    }
}

void MemoryPlan::bind(const Graph& graph, void* base, Buffer* buffer) const {
    bind(base, buffer);
    resolve_views(graph);
}

// ---------------------------------------------------------------- planner

MemoryPlanner::MemoryPlanner(size_t alignment) : alignment_(alignment) {
    MOELITE_ASSERT(alignment > 0 && (alignment & (alignment - 1)) == 0);
}

void MemoryPlanner::define(Tensor* t, int step, bool whole_pass) {
    MOELITE_ASSERT(t != nullptr && !t->is_view());
    MOELITE_ASSERT_MSG(!index_.count(t), "a tensor is defined once per plan");
    PlanEntry e;
    e.tensor = t;
    e.size = std::max(align_up(t->nbytes(), alignment_), alignment_);
    e.first = step;
    e.last = whole_pass ? kStepEndOfPass : step;
    index_.emplace(t, entries_.size());
    entries_.push_back(e);
}

void MemoryPlanner::use(const Tensor* t, int step) {
    if (!t) return;
    auto it = index_.find(owner(t));
    if (it == index_.end()) return;
    PlanEntry& e = entries_[it->second];
    MOELITE_ASSERT_MSG(step >= e.first, "a tensor is read before it is defined");
    e.last = std::max(e.last, step);
}

void MemoryPlanner::keep(const Tensor* t) {
    if (!t) return;
    auto it = index_.find(owner(t));
    if (it != index_.end()) entries_[it->second].last = kStepEndOfPass;
}

MemoryPlan MemoryPlanner::finish() const {
    MemoryPlan plan;
    plan.entries_ = entries_;
    plan.index_ = index_;
    plan.alignment_ = alignment_;
    std::vector<PlanEntry>& entries = plan.entries_;

    // Events in step order; at one step, placements (in definition order)
    // come before releases, so a node never shares memory with its sources.
    std::vector<size_t> by_first(entries.size()), by_last;
    for (size_t i = 0; i < entries.size(); ++i) {
        by_first[i] = i;
        if (entries[i].last != kStepEndOfPass) by_last.push_back(i);
    }
    std::stable_sort(by_first.begin(), by_first.end(),
                     [&](size_t a, size_t b) { return entries[a].first < entries[b].first; });
    std::stable_sort(by_last.begin(), by_last.end(),
                     [&](size_t a, size_t b) { return entries[a].last < entries[b].last; });

    ArenaAllocator arena;
    size_t next_place = 0, next_release = 0;
    while (next_place < by_first.size() || next_release < by_last.size()) {
        const bool place = next_place < by_first.size() &&
                           (next_release == by_last.size() ||
                            entries[by_first[next_place]].first <= entries[by_last[next_release]].last);
        if (place) {
            PlanEntry& e = entries[by_first[next_place++]];
            e.offset = arena.allocate(e.size);
        } else {
            const PlanEntry& e = entries[by_last[next_release++]];
            arena.release(e.offset, e.size);
        }
    }
    plan.arena_bytes_ = arena.high_water();
    return plan;
}

// ---------------------------------------------------------------- graphs

bool tensor_needs_storage(const Tensor& t) {
    if (t.is_view() || (t.flags & kTensorWeight)) return false;
    return t.data == nullptr || (t.flags & kTensorPlanned);
}

MemoryPlan plan_graph_memory(const Graph& graph, const std::function<bool(const Tensor&)>& covers,
                             size_t alignment) {
    auto planned = [&](const Tensor& t) { return tensor_needs_storage(t) && (!covers || covers(t)); };
    MemoryPlanner planner(alignment);
    // Leaves the caller may fill before compute: alive for the whole pass.
    for (Tensor* leaf : graph.leaves())
        if (planned(*leaf)) planner.define(leaf, 0, true);
    const auto& nodes = graph.nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
        Tensor* node = nodes[i];
        const int step = int(i);
        if (planned(*node)) planner.define(node, step, (node->flags & (kTensorOutput | kTensorInput)) != 0);
        for (const Tensor* s : node->src) planner.use(s, step);
        if (node->view_src) {
            planner.use(node->view_src, step);  // a cpy writes its owner here
            if (node->flags & (kTensorOutput | kTensorInput)) planner.keep(node->view_src);
        }
    }
    return planner.finish();
}

void resolve_views(const Graph& graph) {
    for (Tensor* node : graph.nodes()) {
        const Tensor* owner = node->view_src;
        if (!owner) continue;
        node->data = owner->data ? static_cast<char*>(owner->data) + node->view_offset : nullptr;
        node->buffer = owner->buffer;
    }
}

}  // namespace moelite
