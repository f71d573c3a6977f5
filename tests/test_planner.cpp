// core/planner: live tensors never share memory, outputs survive the pass,
// memory is reused along a chain, views resolve, plans are deterministic.
#include <doctest/doctest.h>

#include <random>
#include <unordered_map>
#include <vector>

#include "core/planner.h"

using namespace moelite;

namespace {

const Tensor* owner_of(const Tensor* t) { return t->view_src ? t->view_src : t; }

// A random graph over F32 matrices: elementwise ops, views, reshapes,
// transposed copies, several outputs.
void build_random_graph(Graph& g, std::mt19937& rng) {
    std::vector<Tensor*> pool;
    const int64_t widths[] = {16, 48, 64};
    const int n_inputs = 1 + int(rng() % 3);
    for (int i = 0; i < n_inputs; ++i) pool.push_back(g.new_input(DType::F32, {widths[rng() % 3], 1 + int64_t(rng() % 5)}));
    Tensor* weight_like = g.new_tensor(DType::F32, {16, 4});  // a leaf that is not an input
    pool.push_back(weight_like);
    const int n_ops = 20 + int(rng() % 120);
    for (int i = 0; i < n_ops; ++i) {
        // prefer recent tensors, as models do
        const size_t span = std::min<size_t>(pool.size(), 8);
        Tensor* a = pool[pool.size() - 1 - rng() % span];
        Tensor* t = nullptr;
        switch (rng() % 7) {
            case 0: t = g.scale(a, 0.5f); break;
            case 1: t = g.silu(a); break;
            case 2: {
                Tensor* b = a;
                for (Tensor* c : pool)
                    if (tensor_same_shape(*c, *a) && rng() % 3 == 0) b = c;
                t = rng() % 2 ? g.add(a, b) : g.mul(a, b);
                break;
            }
            case 3:
                if (a->is_contiguous()) t = g.reshape(a, {a->nelements()});
                break;
            case 4:
                if (a->ne[1] > 1) t = g.view(a, {a->ne[0], a->ne[1] - 1}, {a->nb[1]}, a->nb[1]);
                break;
            case 5: t = g.cont(g.transpose(a)); break;
            case 6: t = g.rms_norm(a, 1e-5f); break;
        }
        if (t) pool.push_back(t);
    }
    const int n_outputs = 1 + int(rng() % 3);
    for (int i = 0; i < n_outputs; ++i) g.build_forward(pool[pool.size() / 2 + rng() % (pool.size() - pool.size() / 2)]);
    g.build_forward(pool.back());
}

// Replays the graph over a shadow arena of tags, one per alignment unit:
// every planned tensor stamps its units when defined, and every read checks
// that its owner's units still carry its stamp. Returns the number of
// corrupted reads (reads of memory some other tensor has overwritten).
int replay_and_count_clobbers(const Graph& g, const MemoryPlan& plan) {
    const size_t unit = plan.alignment();
    std::vector<const Tensor*> tags(plan.arena_bytes() / unit + 1, nullptr);
    auto stamp = [&](const PlanEntry& e) {
        for (size_t u = e.offset / unit; u < (e.offset + e.size) / unit; ++u) tags[u] = e.tensor;
    };
    int clobbered = 0;
    auto check = [&](const Tensor* t) {
        const PlanEntry* e = plan.find(owner_of(t));
        if (!e) return;
        for (size_t u = e->offset / unit; u < (e->offset + e->size) / unit; ++u)
            if (tags[u] != e->tensor) {
                ++clobbered;
                return;
            }
    };
    for (const Tensor* leaf : g.leaves())
        if (const PlanEntry* e = plan.find(leaf)) stamp(*e);
    for (const Tensor* node : g.nodes()) {
        for (const Tensor* s : node->src)
            if (s) check(s);
        if (const PlanEntry* e = plan.find(node)) stamp(*e);
    }
    for (const Tensor* t : g.nodes())
        if (t->flags & kTensorOutput) check(t);
    for (const Tensor* t : g.leaves())
        if (t->flags & kTensorInput) check(t);
    return clobbered;
}

}  // namespace

TEST_CASE("planner: on random graphs, tensors alive together never overlap and outputs survive") {
    std::mt19937 rng(1234);
    for (int trial = 0; trial < 150; ++trial) {
        Graph g;
        build_random_graph(g, rng);
        const size_t alignment = size_t(1) << (rng() % 7);
        const MemoryPlan plan = plan_graph_memory(g, {}, alignment);
        const auto& entries = plan.entries();

        // Exactly the tensors that need storage are planned.
        size_t needing = 0, sum = 0;
        for (const Tensor* t : g.leaves()) needing += tensor_needs_storage(*t);
        for (const Tensor* t : g.nodes()) needing += tensor_needs_storage(*t);
        REQUIRE(entries.size() == needing);

        // Live ranges cover every read; inputs and outputs live to the end.
        std::unordered_map<const Tensor*, size_t> step;
        for (size_t i = 0; i < g.nodes().size(); ++i) step[g.nodes()[i]] = i;
        for (size_t i = 0; i < g.nodes().size(); ++i)
            for (const Tensor* s : g.nodes()[i]->src)
                if (s)
                    if (const PlanEntry* e = plan.find(owner_of(s))) CHECK((e->first <= int(i) && int(i) <= e->last));
        for (const PlanEntry& e : entries) {
            CHECK(e.offset % alignment == 0);
            CHECK(e.offset + e.size <= plan.arena_bytes());
            CHECK(e.size >= e.tensor->nbytes());
            if (e.tensor->flags & (kTensorOutput | kTensorInput)) CHECK(e.last == kStepEndOfPass);
            sum += e.size;
        }
        CHECK(plan.arena_bytes() <= sum);

        // Brute force: overlapping lifetimes imply disjoint bytes.
        int overlaps = 0;
        for (size_t i = 0; i < entries.size(); ++i)
            for (size_t j = i + 1; j < entries.size(); ++j) {
                const PlanEntry& a = entries[i];
                const PlanEntry& b = entries[j];
                const bool live_together = a.first <= b.last && b.first <= a.last;
                const bool bytes_overlap = a.offset < b.offset + b.size && b.offset < a.offset + a.size;
                overlaps += live_together && bytes_overlap;
            }
        CHECK(overlaps == 0);
        CHECK(replay_and_count_clobbers(g, plan) == 0);
    }
}

TEST_CASE("planner: the replay catches a plan that packs everything at offset 0") {
    // Guards the checker above: a plan with every offset 0 must be flagged.
    Graph g;
    Tensor* x = g.new_input(DType::F32, {64});
    Tensor* a = g.scale(x, 2.0f);
    Tensor* b = g.scale(a, 2.0f);
    g.build_forward(g.add(a, b));
    MemoryPlanner planner(16);
    planner.define(x, 0, true);
    for (Tensor* n : g.nodes()) planner.define(n, 0, true);  // all defined at once: disjoint
    MemoryPlan good = planner.finish();
    CHECK(replay_and_count_clobbers(g, good) == 0);
    MemoryPlanner bad(16);
    bad.define(x, 0, false);  // released at once: the next tensor takes its place
    for (size_t i = 0; i < g.nodes().size(); ++i) bad.define(g.nodes()[i], int(i) + 1, false);
    CHECK(replay_and_count_clobbers(g, bad.finish()) > 0);
}

TEST_CASE("planner: a long chain reuses memory") {
    Graph g;
    Tensor* t = g.new_input(DType::F32, {1024});
    for (int i = 0; i < 1000; ++i) t = g.silu(t);
    g.build_forward(t);
    const MemoryPlan plan = plan_graph_memory(g, {}, 64);
    CHECK(plan.entries().size() == 1001);
    // the input (kept) plus two alternating intermediates
    CHECK(plan.arena_bytes() == 3 * 4096);
}

TEST_CASE("planner: an early output is never overwritten by later nodes") {
    Graph g;
    Tensor* x = g.new_input(DType::F32, {256});
    Tensor* early = g.scale(x, 3.0f);
    Tensor* t = early;
    for (int i = 0; i < 50; ++i) t = g.silu(t);
    g.build_forward(early);
    g.build_forward(t);
    const MemoryPlan plan = plan_graph_memory(g, {}, 32);
    const PlanEntry* e = plan.find(early);
    REQUIRE(e != nullptr);
    CHECK(e->last == kStepEndOfPass);
    for (const PlanEntry& other : plan.entries())
        if (other.tensor != early) CHECK((other.offset >= e->offset + e->size || other.offset + other.size <= e->offset));
}

TEST_CASE("planner: bind sets data, views resolve to their owner's address") {
    Graph g;
    std::vector<float> weight_memory(32 * 8, 1.0f);
    Tensor like;
    const int64_t wne[] = {32, 8};
    tensor_set_shape(like, DType::F32, wne, 2);
    like.data = weight_memory.data();
    Tensor* w = g.new_weight(like);
    Tensor* x = g.new_input(DType::F32, {32, 4});
    Tensor* h = g.mul_mat(w, x);                          // [8, 4]
    Tensor* row = g.view(h, {8, 2}, {h->nb[1]}, 2 * h->nb[1]);  // rows 2..3
    Tensor* tr = g.transpose(row);
    Tensor* out = g.cont(tr);
    Tensor* scratch = g.new_tensor(DType::F32, {16});  // a planned leaf written by cpy
    Tensor* copied = g.cpy(g.reshape(g.cont(row), {16}), g.view(scratch, {16}, {}, 0));
    g.build_forward(out);
    g.build_forward(copied);

    const MemoryPlan plan = plan_graph_memory(g, {}, 64);
    CHECK(plan.find(w) == nullptr);  // weights are never planned
    CHECK(plan.find(row) == nullptr);
    CHECK(plan.find(copied) == nullptr);
    CHECK(plan.find(scratch) != nullptr);
    std::vector<char> arena(plan.arena_bytes() + 64);
    char* base = arena.data() + (64 - reinterpret_cast<uintptr_t>(arena.data()) % 64) % 64;
    plan.bind(g, base, nullptr);
    CHECK(h->data == base + plan.find(h)->offset);
    CHECK((h->flags & kTensorPlanned) != 0);
    CHECK(row->data == static_cast<char*>(h->data) + 2 * h->nb[1]);
    CHECK(tr->data == row->data);
    CHECK(copied->data == scratch->data);
    CHECK(w->data == weight_memory.data());
    CHECK(out->data == base + plan.find(out)->offset);
}

TEST_CASE("planner: planning the same graph twice gives the same plan") {
    std::mt19937 rng(99);
    Graph g;
    build_random_graph(g, rng);
    const MemoryPlan first = plan_graph_memory(g, {}, 64);
    std::vector<char> arena(first.arena_bytes() + 64);
    first.bind(g, arena.data(), nullptr);  // data set now: a re-plan must still cover them
    const MemoryPlan second = plan_graph_memory(g, {}, 64);
    CHECK(first.arena_bytes() == second.arena_bytes());
    REQUIRE(first.entries().size() == second.entries().size());
    for (size_t i = 0; i < first.entries().size(); ++i) {
        CHECK(first.entries()[i].tensor == second.entries()[i].tensor);
        CHECK(first.entries()[i].offset == second.entries()[i].offset);
        CHECK(first.entries()[i].first == second.entries()[i].first);
        CHECK(first.entries()[i].last == second.entries()[i].last);
    }
}

TEST_CASE("planner: the covers predicate limits the plan") {
    Graph g;
    Tensor* x = g.new_input(DType::F32, {64});
    Tensor* a = g.scale(x, 1.0f);
    Tensor* b = g.silu(a);
    g.build_forward(b);
    const MemoryPlan plan = plan_graph_memory(g, [&](const Tensor& t) { return &t != a; }, 16);
    CHECK(plan.find(a) == nullptr);
    CHECK(plan.find(x) != nullptr);
    CHECK(plan.find(b) != nullptr);
    CHECK(plan.entries().size() == 2);
}
