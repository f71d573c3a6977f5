// backends/scheduler: placement, splits and copies between two fake backends
// defined here -- a host one (add, mul, scale, cpy on F32) and a device one
// whose memory the host cannot touch (add and scale only) -- and results that
// equal a host-only run of the same graph.
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/scheduler.h"
#include "core/error.h"
#include "test_util.h"

using namespace moelite;

namespace {

// ---------------------------------------------------------------- kernels
// Shared by both fake backends; `at` maps a tensor to the memory its data
// stands for (identity on the host, translation on the device).

using Resolve = std::function<char*(const Tensor&)>;

float& element(const Tensor& t, char* base, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return *reinterpret_cast<float*>(base + i0 * t.nb[0] + i1 * t.nb[1] + i2 * t.nb[2] + i3 * t.nb[3]);
}

void run_kernel(const Tensor& node, const Resolve& at) {
    char* out = at(node);
    const Tensor& a = *node.src[0];
    char* pa = at(a);
    if (node.op == Op::Cpy) {  // F32 -> F32, elements in logical order
        const Tensor& dst = node;
        for (int64_t k = 0; k < a.nelements(); ++k) {
            int64_t ia[4], id[4], r = k, q = k;
            for (int d = 0; d < 4; ++d) {
                ia[d] = r % a.ne[d];
                r /= a.ne[d];
                id[d] = q % dst.ne[d];
                q /= dst.ne[d];
            }
            element(dst, out, id[0], id[1], id[2], id[3]) = element(a, pa, ia[0], ia[1], ia[2], ia[3]);
        }
        return;
    }
    const Tensor* b = node.src[1];
    char* pb = b ? at(*b) : nullptr;
    for (int64_t i3 = 0; i3 < node.ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < node.ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < node.ne[1]; ++i1)
                for (int64_t i0 = 0; i0 < node.ne[0]; ++i0) {
                    const float x = element(a, pa, i0, i1, i2, i3);
                    float y = 0;
                    if (b) y = element(*b, pb, i0 % b->ne[0], i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]);
                    float& r = element(node, out, i0, i1, i2, i3);
                    switch (node.op) {
                        case Op::Add: r = x + y; break;
                        case Op::Mul: r = x * y; break;
                        case Op::Scale: r = x * scale_param_s(node) + scale_param_bias(node); break;
                        default: FAIL("unexpected op"); break;
                    }
                }
}

bool all_f32(const Tensor& node) {
    if (node.type != DType::F32) return false;
    for (const Tensor* s : node.src)
        if (s && s->type != DType::F32) return false;
    return true;
}

// ---------------------------------------------------------------- host

class HostBuffer : public Buffer {
public:
    HostBuffer(Backend& backend, size_t bytes) : backend_(backend), memory_(bytes + 64), size_(bytes) {
        base_ = memory_.data() + (64 - reinterpret_cast<uintptr_t>(memory_.data()) % 64) % 64;
    }
    HostBuffer(Backend& backend, void* ptr, size_t bytes) : backend_(backend), base_(static_cast<char*>(ptr)), size_(bytes) {}
    Backend& backend() const override { return backend_; }
    void* base() const override { return base_; }
    size_t size() const override { return size_; }
    bool is_host() const override { return true; }

private:
    Backend& backend_;
    std::vector<char> memory_;
    char* base_;
    size_t size_;
};

class FakeHost : public Backend {
public:
    std::string name() const override { return "host"; }
    std::unique_ptr<Buffer> alloc_buffer(size_t bytes) override { return std::make_unique<HostBuffer>(*this, bytes); }
    std::unique_ptr<Buffer> wrap_host_memory(void* ptr, size_t bytes) override {
        return std::make_unique<HostBuffer>(*this, ptr, bytes);
    }
    bool supports_op(const Tensor& node) const override {
        return (node.op == Op::Add || node.op == Op::Mul || node.op == Op::Scale || node.op == Op::Cpy) && all_f32(node);
    }
    void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) override {
        std::memcpy(static_cast<char*>(t.data) + offset, src, size);
    }
    void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) override {
        std::memcpy(dst, static_cast<const char*>(t.data) + offset, size);
    }
    void compute(std::span<Tensor* const> nodes) override {
        for (Tensor* node : nodes) {
            computed.push_back(node->name);
            bool readable = true;
            for (const Tensor* s : node->src)
                if (s && s->buffer && !s->buffer->is_host()) readable = false;
            if (!readable) {
                ++violations;
                continue;
            }
            run_kernel(*node, [](const Tensor& t) { return static_cast<char*>(t.data); });
        }
    }
    void synchronize() override {}

    std::vector<std::string> computed;
    int violations = 0;
};

// ---------------------------------------------------------------- device
// Its buffers hand out opaque addresses that only it translates.

class FakeDevice;

class DeviceBuffer : public Buffer {
public:
    DeviceBuffer(Backend& backend, size_t bytes, uintptr_t base) : backend_(backend), memory_(bytes), base_(base) {}
    Backend& backend() const override { return backend_; }
    void* base() const override { return reinterpret_cast<void*>(base_); }
    size_t size() const override { return memory_.size(); }
    bool is_host() const override { return false; }
    // Local memory of an opaque address inside this buffer, or nullptr.
    char* local(const void* p) {
        const uintptr_t a = reinterpret_cast<uintptr_t>(p);
        return a >= base_ && a < base_ + memory_.size() ? memory_.data() + (a - base_) : nullptr;
    }

private:
    Backend& backend_;
    std::vector<char> memory_;
    uintptr_t base_;
};

class FakeDevice : public Backend {
public:
    std::string name() const override { return "device"; }
    size_t alignment() const override { return 256; }
    std::unique_ptr<Buffer> alloc_buffer(size_t bytes) override {
        next_base_ += (uintptr_t(1) << 32);
        auto b = std::make_unique<DeviceBuffer>(*this, bytes, next_base_);
        buffers_.push_back(b.get());
        return b;
    }
    std::unique_ptr<Buffer> wrap_host_memory(void*, size_t) override { return nullptr; }
    bool supports_op(const Tensor& node) const override {
        return (node.op == Op::Add || node.op == Op::Scale) && all_f32(node);
    }
    char* local(const Tensor& t) {
        if (!t.buffer || &t.buffer->backend() != this) return nullptr;
        return static_cast<DeviceBuffer*>(t.buffer)->local(t.data);
    }
    void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) override {
        char* p = local(t);
        REQUIRE(p != nullptr);
        std::memcpy(p + offset, src, size);
    }
    void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) override {
        char* p = local(t);
        REQUIRE(p != nullptr);
        std::memcpy(dst, p + offset, size);
    }
    void compute(std::span<Tensor* const> nodes) override {
        for (Tensor* node : nodes) {
            computed.push_back(node->name);
            bool readable = local(*node) != nullptr;
            for (const Tensor* s : node->src)
                if (s && !local(*s)) readable = false;
            if (!readable) {
                ++violations;
                continue;
            }
            run_kernel(*node, [this](const Tensor& t) { return local(t); });
        }
    }
    void synchronize() override {}

    std::vector<std::string> computed;
    int violations = 0;

private:
    uintptr_t next_base_ = uintptr_t(0x7d) << 40;
    std::vector<DeviceBuffer*> buffers_;
};

// ---------------------------------------------------------------- helpers

struct Backends {
    FakeHost host;
    FakeDevice device;
    std::vector<std::unique_ptr<Buffer>> weight_buffers;

    // A weight leaf holding `values`, on `where` (host memory is wrapped, device memory copied).
    Tensor* weight(Graph& g, Backend& where, std::vector<float>& values, std::initializer_list<int64_t> ne,
                   const char* name) {
        Tensor like;
        std::vector<int64_t> dims(ne);
        tensor_set_shape(like, DType::F32, dims.data(), int(dims.size()));
        like.name = name;
        const size_t bytes = values.size() * sizeof(float);
        REQUIRE(like.nbytes() == bytes);
        if (&where == &host) {
            weight_buffers.push_back(host.wrap_host_memory(values.data(), bytes));
            like.data = values.data();
        } else {
            weight_buffers.push_back(device.alloc_buffer(bytes));
            like.data = weight_buffers.back()->base();
        }
        like.buffer = weight_buffers.back().get();
        Tensor* t = g.new_weight(like);
        if (&where != &host) device.set_tensor(*t, values.data(), 0, bytes);
        return t;
    }
};

std::vector<float> read_tensor(const Tensor& t) {
    std::vector<float> out(size_t(t.nelements()));
    REQUIRE(t.is_contiguous());
    t.buffer->backend().get_tensor(t, out.data(), 0, out.size() * sizeof(float));
    return out;
}

Tensor* leaf_named(const Graph& g, const std::string& name) {
    for (Tensor* t : g.leaves())
        if (t->name == name) return t;
    FAIL("no leaf named " << name);
    return nullptr;
}

void write_input(Tensor& t, const std::vector<float>& values) {
    REQUIRE(t.data != nullptr);
    REQUIRE(size_t(t.nelements()) == values.size());
    std::memcpy(t.data, values.data(), values.size() * sizeof(float));
}

// The graph of the first tests; `dev` is where the "device" weight lives.
struct ChainGraph {
    Tensor *x, *a, *b, *c, *d, *e, *f, *out;
};

ChainGraph build_chain(Graph& g, Backends& be, Backend& dev, std::vector<float>& w_dev, std::vector<float>& w_host,
                       std::vector<float>& w_pull) {
    ChainGraph n;
    n.x = g.new_input(DType::F32, {8, 4}, "x");
    Tensor* wd = be.weight(g, dev, w_dev, {8, 4}, "w_dev");
    Tensor* wh = be.weight(g, be.host, w_host, {8}, "w_host");
    Tensor* wp = be.weight(g, be.host, w_pull, {8, 4}, "w_pull");
    n.a = g.add(wd, n.x);        // pulled to the device by its weight
    n.b = g.scale(n.a, 2.0f);    // device: first in priority order
    n.c = g.mul(n.b, wh);        // host: the device has no mul
    n.d = g.add(n.c, n.x);       // device
    n.e = g.scale(n.d, 0.5f, 1.0f);
    n.f = g.add(wp, n.e);        // pulled to the host by its weight, though the device has add
    n.out = g.mul(n.f, n.c);     // host
    const char* names[] = {"a", "b", "c", "d", "e", "f", "out"};
    Tensor* nodes[] = {n.a, n.b, n.c, n.d, n.e, n.f, n.out};
    for (int i = 0; i < 7; ++i) nodes[i]->name = names[i];
    g.build_forward(n.out);
    return n;
}

}  // namespace

TEST_CASE("scheduler: weights pull ops, splits and copies at the boundaries, results as on the host alone") {
    std::vector<float> w_dev = test::random_floats(32, 1), w_host = test::random_floats(8, 2),
                       w_pull = test::random_floats(32, 3), x_values = test::random_floats(32, 4);

    // Reference: everything on the host.
    Backends ref;
    Graph g_ref;
    ChainGraph r = build_chain(g_ref, ref, ref.host, w_dev, w_host, w_pull);
    Scheduler host_only({&ref.host});
    host_only.plan(g_ref);
    write_input(*r.x, x_values);
    host_only.compute(g_ref);
    CHECK(host_only.stats().n_splits == 1);
    CHECK(host_only.stats().n_copies == 0);
    const std::vector<float> expected = read_tensor(*r.out);

    Backends be;
    Graph g;
    ChainGraph n = build_chain(g, be, be.device, w_dev, w_host, w_pull);
    Scheduler sched({&be.device, &be.host});
    sched.plan(g);
    CHECK(sched.backend_of(n.a) == &be.device);
    CHECK(sched.backend_of(n.b) == &be.device);
    CHECK(sched.backend_of(n.c) == &be.host);
    CHECK(sched.backend_of(n.d) == &be.device);
    CHECK(sched.backend_of(n.e) == &be.device);
    CHECK(sched.backend_of(n.f) == &be.host);
    CHECK(sched.backend_of(n.out) == &be.host);
    // device [a b] | host [c] | device [d e] | host [f out]
    REQUIRE(sched.splits().size() == 4);
    CHECK(sched.stats().n_splits == 4);
    // copies: x and c to the device (x once, reused by the third split), b and e to the host
    CHECK(sched.stats().n_copies == 4);
    const auto& s = sched.splits();
    REQUIRE(s[0].copies.size() == 1);
    CHECK(s[0].copies[0].src == n.x);
    REQUIRE(s[1].copies.size() == 1);
    CHECK(s[1].copies[0].src == n.b);
    REQUIRE(s[2].copies.size() == 1);
    CHECK(s[2].copies[0].src == n.c);
    REQUIRE(s[3].copies.size() == 1);
    CHECK(s[3].copies[0].src == n.e);
    CHECK(sched.arena_bytes(&be.device) > 0);
    CHECK(n.x->buffer->is_host());  // inputs live in the host arena

    write_input(*n.x, x_values);
    sched.compute(g);
    CHECK(be.device.violations == 0);
    CHECK(be.host.violations == 0);
    CHECK(be.device.computed == std::vector<std::string>{"a", "b", "d", "e"});
    CHECK(be.host.computed == std::vector<std::string>{"c", "f", "out"});
    CHECK(sched.stats().copy_bytes == 4 * 32 * sizeof(float));
    CHECK(n.c->src[0] == n.b);  // the graph is restored after compute
    CHECK(read_tensor(*n.out) == expected);

    // An override beats the weight: a runs on the host, its device weight is copied there.
    sched.set_override(n.a, &be.host);
    sched.plan(g);  // inputs may move on a new plan: write them after it
    write_input(*n.x, x_values);
    sched.compute(g);
    CHECK(sched.backend_of(n.a) == &be.host);
    CHECK(sched.stats().n_splits == 5);  // host [a] | device [b] | host [c] | device [d e] | host [f out]
    CHECK(sched.stats().n_copies == 6);  // w_dev, a, b, c, x, e
    CHECK(be.device.violations == 0);
    CHECK(be.host.violations == 0);
    CHECK(read_tensor(*n.out) == expected);
}

TEST_CASE("scheduler: views of device tensors read by the host are copied with their strides") {
    std::vector<float> w = test::random_floats(32, 5), scale_row = test::random_floats(4, 6),
                       x_values = test::random_floats(32, 7);
    auto build = [&](Graph& g, Backends& be, Backend& dev) {
        Tensor* x = g.new_input(DType::F32, {8, 4}, "x");
        Tensor* a = g.add(be.weight(g, dev, w, {8, 4}, "w"), x);  // device
        Tensor* rows = g.view(a, {8, 2}, {a->nb[1]}, a->nb[1]);   // rows 1..2
        Tensor* t = g.transpose(a);                               // [4, 8]
        Tensor* m1 = g.mul(rows, rows);                           // host
        Tensor* m2 = g.mul(t, be.weight(g, be.host, scale_row, {4}, "s"));  // host
        g.build_forward(m1);
        g.build_forward(m2);
        return std::pair{m1, m2};
    };
    Backends ref;
    Graph g_ref;
    auto [r1, r2] = build(g_ref, ref, ref.host);
    Scheduler host_only({&ref.host});
    host_only.plan(g_ref);
    write_input(*leaf_named(g_ref, "x"), x_values);
    host_only.compute(g_ref);

    Backends be;
    Graph g;
    auto [m1, m2] = build(g, be, be.device);
    Scheduler sched({&be.device, &be.host});
    sched.plan(g);
    CHECK(sched.stats().n_splits == 2);
    CHECK(sched.stats().n_copies == 3);  // x to the device; the row view and the transposed view back
    write_input(*leaf_named(g, "x"), x_values);
    sched.compute(g);
    CHECK(be.device.violations == 0);
    CHECK(be.host.violations == 0);
    CHECK(sched.stats().copy_bytes == (32 + 16 + 32) * sizeof(float));
    CHECK(read_tensor(*m1) == read_tensor(*r1));
    CHECK(read_tensor(*m2) == read_tensor(*r2));
}

TEST_CASE("scheduler: a copy is made again after a cpy rewrote its source") {
    std::vector<float> w = test::random_floats(16, 8);
    const std::vector<float> cache_start = test::random_floats(16, 9);
    auto run = [&](bool with_device) {
        Backends be;
        std::vector<float> cache_memory = cache_start;
        Graph g;
        Backend& dev = with_device ? static_cast<Backend&>(be.device) : be.host;
        Tensor* wd = be.weight(g, dev, w, {8, 2}, "w");
        Tensor* cache = be.weight(g, be.host, cache_memory, {8, 2}, "cache");  // like a KV cache on the host
        Tensor* r1 = g.add(wd, cache);                 // device, reads the cache: copy
        Tensor* nv = g.scale(r1, 3.0f);                // device
        Tensor* written = g.cpy(nv, cache);            // host: the cache is host memory
        g.build_forward(written);
        Tensor* r2 = g.add(wd, cache);                 // device, reads the new cache: a fresh copy
        Tensor* out = g.mul(r2, r2);                   // host
        g.build_forward(out);
        std::vector<Backend*> list = {&be.device, &be.host};
        if (!with_device) list = {&be.host};
        Scheduler sched(list);
        sched.compute(g);
        CHECK(be.device.violations == 0);
        CHECK(be.host.violations == 0);
        if (with_device) {
            CHECK(sched.backend_of(written) == &be.host);
            CHECK(sched.stats().n_splits == 4);  // device [r1 nv] | host [cpy] | device [r2] | host [out]
            CHECK(sched.stats().n_copies == 4);  // cache, nv, cache again, r2
        }
        return read_tensor(*out);
    };
    const std::vector<float> host = run(false);
    const std::vector<float> both = run(true);
    // (w + 3 (w + cache))^2, element by element
    REQUIRE(host.size() == 16);
    for (size_t i = 0; i < 16; ++i) {
        const float v = w[i] + (w[i] + cache_start[i]) * 3.0f;
        CHECK(host[i] == doctest::Approx(v * v));
    }
    CHECK(both == host);
}

TEST_CASE("scheduler: plans once per graph, again on a new graph or replan()") {
    Backends be;
    std::vector<float> w = test::random_floats(32, 10), wh = test::random_floats(8, 11), wp = test::random_floats(32, 12);
    Scheduler sched({&be.device, &be.host});
    Graph g1;
    build_chain(g1, be, be.device, w, wh, wp);
    sched.compute(g1);
    sched.compute(g1);
    CHECK(sched.stats().n_plans == 1);
    CHECK(sched.stats().n_computes == 2);
    sched.replan();
    sched.compute(g1);
    CHECK(sched.stats().n_plans == 2);
    {
        Graph g2;
        build_chain(g2, be, be.device, w, wh, wp);
        sched.compute(g2);
        CHECK(sched.stats().n_plans == 3);
    }
    Graph g3;  // may reuse g2's address: still a new graph
    build_chain(g3, be, be.device, w, wh, wp);
    sched.compute(g3);
    CHECK(sched.stats().n_plans == 4);
    CHECK(be.device.violations == 0);
    CHECK(be.host.violations == 0);
}

TEST_CASE("scheduler: a node no backend supports is an error naming the op") {
    Backends be;
    Graph g;
    Tensor* x = g.new_input(DType::F32, {8}, "x");
    g.build_forward(g.silu(x));
    Scheduler sched({&be.device, &be.host});
    try {
        sched.plan(g);
        FAIL("plan accepted an unsupported op");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("silu") != std::string::npos);
    }
}
