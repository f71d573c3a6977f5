// Scheduler: placement, splits, copies, per-backend memory plans, compute.
// The rules are in backends/scheduler.h.
#include "backends/scheduler.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/log.h"

namespace moelite {

namespace {

const Tensor* memory_owner(const Tensor* t) { return t->view_src ? t->view_src : t; }

// Points src[] of a split's nodes at their copies for as long as it lives.
class PatchGuard {
public:
    explicit PatchGuard(const std::vector<Scheduler::Patch>& patches) : patches_(patches) {
        originals_.reserve(patches.size());
        for (const auto& p : patches) {
            originals_.push_back(p.node->src[p.slot]);
            p.node->src[p.slot] = p.copy;
        }
    }
    ~PatchGuard() {
        for (size_t i = patches_.size(); i-- > 0;) patches_[i].node->src[patches_[i].slot] = originals_[i];
    }
    PatchGuard(const PatchGuard&) = delete;
    PatchGuard& operator=(const PatchGuard&) = delete;

private:
    const std::vector<Scheduler::Patch>& patches_;
    std::vector<Tensor*> originals_;
};

}  // namespace

Scheduler::Scheduler(std::vector<Backend*> backends) : backends_(std::move(backends)) {
    MOELITE_ASSERT_MSG(!backends_.empty(), "a scheduler needs at least the host backend");
    for (const Backend* b : backends_) MOELITE_ASSERT(b != nullptr);
    plans_.resize(backends_.size());
    arenas_.resize(backends_.size());
}

Scheduler::~Scheduler() = default;

void Scheduler::set_override(const Tensor* node, Backend* backend) {
    MOELITE_ASSERT(node != nullptr && is_ours(backend));
    overrides_[node] = backend;
    replan();
}

void Scheduler::clear_overrides() {
    overrides_.clear();
    replan();
}

bool Scheduler::is_ours(const Backend* b) const {
    return std::find(backends_.begin(), backends_.end(), b) != backends_.end();
}

Backend* Scheduler::backend_of(const Tensor* node) const {
    auto it = placement_.find(node);
    return it == placement_.end() ? nullptr : it->second;
}

size_t Scheduler::arena_bytes(const Backend* backend) const {
    for (size_t i = 0; i < backends_.size(); ++i)
        if (backends_[i] == backend) return plans_[i].arena_bytes();
    return 0;
}

// ---------------------------------------------------------------- placement

Scheduler::Location Scheduler::location_of(const Tensor* t) const {
    const Tensor* owner = memory_owner(t);
    Location loc;
    if (auto it = placement_.find(owner); it != placement_.end() && tensor_needs_storage(*owner)) {
        loc.backend = it->second;
        loc.host_visible = it->second == host_backend();
        loc.arena = true;
    } else if (owner->is_leaf() && tensor_needs_storage(*owner)) {
        loc.backend = host_backend();
        loc.host_visible = true;
        loc.arena = true;
    } else if (owner->buffer) {
        loc.backend = &owner->buffer->backend();
        loc.host_visible = owner->buffer->is_host();
    } else {
        MOELITE_ASSERT_MSG(owner->data != nullptr, "a tensor with neither storage nor a plan");
        loc.host_visible = true;  // plain host memory
    }
    return loc;
}

bool Scheduler::reads_directly(const Backend* b, const Tensor* t) const {
    const Location loc = location_of(t);
    if (loc.backend == b) return true;
    return b == host_backend() && loc.host_visible && !loc.arena;
}

Backend* Scheduler::place(const Tensor* node) const {
    if (op_is_view(node->op)) {
        const Location loc = location_of(node);
        return loc.backend && is_ours(loc.backend) ? loc.backend : host_backend();
    }
    if (node->view_src) {
        // It writes existing memory: compute it where that memory is.
        const Location loc = location_of(node);
        if (loc.backend && is_ours(loc.backend) && loc.backend->supports_op(*node)) return loc.backend;
        if (loc.host_visible && !(loc.arena && loc.backend != host_backend()) && host_backend()->supports_op(*node))
            return host_backend();
        fail("scheduler: no backend can compute %s '%s' into the memory of '%s'", op_name(node->op),
             node->name.c_str(), node->view_src->name.c_str());
    }
    if (auto it = overrides_.find(node); it != overrides_.end() && it->second->supports_op(*node)) return it->second;
    for (const Tensor* s : node->src) {
        if (!s) continue;
        const Tensor* owner = memory_owner(s);
        if (!(owner->flags & kTensorWeight) || !owner->buffer) continue;
        Backend* b = &owner->buffer->backend();
        if (is_ours(b) && b->supports_op(*node)) return b;
    }
    for (Backend* b : backends_)
        if (b->supports_op(*node)) return b;
    fail("scheduler: no backend supports %s '%s' (%s %s)", op_name(node->op), node->name.c_str(),
         dtype_name(node->type), tensor_shape_string(*node).c_str());
}

// ---------------------------------------------------------------- splits

void Scheduler::build_splits(Graph& graph) {
    placement_.clear();
    splits_.clear();
    copy_tensors_.clear();
    const auto& nodes = graph.nodes();
    for (Tensor* node : nodes) placement_[node] = place(node);

    // Cut the order into runs of computed nodes on one backend.
    for (size_t i = 0; i < nodes.size(); ++i) {
        Tensor* node = nodes[i];
        if (op_is_view(node->op)) continue;
        Backend* b = placement_[node];
        if (splits_.empty() || splits_.back().backend != b) {
            if (!splits_.empty()) splits_.back().end = i;
            Split s;
            s.backend = b;
            s.begin = splits_.empty() ? 0 : i;
            splits_.push_back(std::move(s));
        }
        splits_.back().nodes.push_back(node);
    }
    if (!splits_.empty()) splits_.back().end = nodes.size();

    // Copies: one per (tensor, backend) while the tensor's memory is unchanged.
    std::map<std::pair<const Tensor*, const Backend*>, Tensor*> current;
    for (Split& split : splits_) {
        for (Tensor* node : split.nodes) {
            for (int j = 0; j < kMaxSrc; ++j) {
                Tensor* s = node->src[j];
                if (!s || reads_directly(split.backend, s)) continue;
                Tensor*& copy = current[{s, split.backend}];
                if (!copy) {
                    copy = &copy_tensors_.emplace_back();
                    copy->type = s->type;
                    for (int d = 0; d < kMaxDims; ++d) {
                        copy->ne[d] = s->ne[d];
                        copy->nb[d] = s->nb[d];
                    }
                    copy->name = s->name + "@" + split.backend->name();
                    split.copies.push_back({s, copy});
                }
                split.patches.push_back({node, j, copy});
            }
        }
        // Nodes of this split that rewrite memory (cpy) make earlier copies of it stale.
        for (Tensor* node : split.nodes) {
            if (!node->view_src) continue;
            for (auto it = current.begin(); it != current.end();)
                it = memory_owner(it->first.first) == node->view_src ? current.erase(it) : std::next(it);
        }
    }
}

// ---------------------------------------------------------------- memory

void Scheduler::plan_memory(Graph& graph) {
    std::vector<MemoryPlanner> planners;
    for (const Backend* b : backends_) planners.emplace_back(b->alignment());
    auto index_of = [&](const Backend* b) {
        return size_t(std::find(backends_.begin(), backends_.end(), b) - backends_.begin());
    };
    auto use = [&](const Tensor* t, int step) {
        for (auto& p : planners) p.use(t, step);
    };

    for (Tensor* leaf : graph.leaves())
        if (tensor_needs_storage(*leaf)) planners.back().define(leaf, 0, true);
    const auto& nodes = graph.nodes();
    for (const Split& split : splits_) {
        const int begin = int(split.begin);
        MemoryPlanner& here = planners[index_of(split.backend)];
        for (const Copy& c : split.copies) {
            here.define(c.dst, begin);
            use(c.src, begin);
        }
        PatchGuard patched(split.patches);  // the nodes read the copies
        for (size_t i = split.begin; i < split.end; ++i) {
            Tensor* node = nodes[i];
            const int step = int(i);
            const bool keep = (node->flags & (kTensorOutput | kTensorInput)) != 0;
            if (!op_is_view(node->op) && tensor_needs_storage(*node))
                planners[index_of(placement_[node])].define(node, step, keep);
            for (const Tensor* s : node->src) use(s, step);
            if (node->view_src) {
                use(node->view_src, step);
                if (keep)
                    for (auto& p : planners) p.keep(node->view_src);
            }
        }
    }

    for (size_t i = 0; i < backends_.size(); ++i) {
        plans_[i] = planners[i].finish();
        const size_t bytes = plans_[i].arena_bytes();
        if (bytes == 0) continue;
        if (!arenas_[i] || arenas_[i]->size() < bytes) {
            arenas_[i].reset();
            arenas_[i] = backends_[i]->alloc_buffer(bytes);
            if (!arenas_[i]) fail("scheduler: %s could not allocate %zu bytes", backends_[i]->name().c_str(), bytes);
        }
        plans_[i].bind(arenas_[i]->base(), arenas_[i].get());
    }
    resolve_views(graph);
}

// ---------------------------------------------------------------- driving

void Scheduler::plan(Graph& graph) {
    if (graph.id() == planned_graph_id_ && graph.nodes().size() == planned_node_count_) return;
    build_splits(graph);
    plan_memory(graph);
    planned_graph_id_ = graph.id();
    planned_node_count_ = graph.nodes().size();
    stats_.n_splits = splits_.size();
    stats_.n_copies = 0;
    for (const Split& s : splits_) stats_.n_copies += s.copies.size();
    ++stats_.n_plans;
    MOELITE_LOG_DEBUG("scheduler: %zu nodes in %zu splits, %zu copies", graph.nodes().size(), stats_.n_splits,
                      stats_.n_copies);
}

void Scheduler::copy_tensor(const Copy& copy, Backend& to) {
    const Tensor& src = *copy.src;
    Tensor& dst = *copy.dst;
    const size_t n = src.nbytes();
    MOELITE_ASSERT(src.data != nullptr && dst.data != nullptr && dst.buffer != nullptr);
    if (!src.buffer || src.buffer->is_host()) {
        to.set_tensor(dst, src.data, 0, n);
    } else if (dst.buffer->is_host()) {
        src.buffer->backend().get_tensor(src, dst.data, 0, n);
    } else {
        staging_.resize(n);
        src.buffer->backend().get_tensor(src, staging_.data(), 0, n);
        to.set_tensor(dst, staging_.data(), 0, n);
    }
    stats_.copy_bytes += n;
}

void Scheduler::compute(Graph& graph) {
    plan(graph);
    stats_.copy_bytes = 0;
    for (const Split& split : splits_) {
        for (const Copy& c : split.copies) copy_tensor(c, *split.backend);
        PatchGuard patched(split.patches);
        if (!split.nodes.empty()) split.backend->compute(split.nodes);
        split.backend->synchronize();
    }
    ++stats_.n_computes;
}

}  // namespace moelite
