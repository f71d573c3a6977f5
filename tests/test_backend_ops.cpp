// The CPU backend against the independent references: every case of the
// backend op table (backend_ops_cases.cpp) on every ISA this machine
// supports, with 1 and 3 threads, and on emulated builds of the kernels of
// the ISAs above (tests/emulated.h); plus what the table cannot express: whole
// graphs in one compute() (barriers between dependent nodes), MoE experts
// that are not chosen never being read, and supports_op declining what the
// kernels cannot do.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/graph.h"
#include "quant/kernels.h"
#include "quant/quant.h"
#include "tests/backend_ops_harness.h"
#include "tests/emulated.h"
#include "tests/backend_ops_ref.h"
#include "tests/test_util.h"

using namespace moelite;
using namespace moelite::test;

namespace {

struct CpuConfig {
    std::string label;
    std::unique_ptr<CpuBackend> backend;
};

// Each ISA with 1 and 3 threads; then, on the best ISA, mul_mat through BLAS
// for every size and never (the default sends only N >= 32 there).
std::vector<CpuConfig> cpu_configs() {
    std::vector<CpuConfig> configs;
    auto add = [&](Isa isa, int threads, int64_t blas_min_cols, const std::string& extra) {
        CpuBackendOptions o;
        o.n_threads = threads;
        o.isa = isa;
        o.blas_min_cols = blas_min_cols;
        configs.push_back({std::string(isa_name(isa)) + ", " + std::to_string(threads) + " threads" + extra,
                           std::make_unique<CpuBackend>(o)});
    };
    for (Isa isa : isa_supported())
        for (int threads : {1, 3}) add(isa, threads, CpuBackendOptions::kDefaultBlasMinCols, "");
    add(isa_active(), 2, 0, ", no BLAS");
    // mul_mat's AMX path (bf16 tiles) with the kernel's scalar reference,
    // wherever the CPU runs it or not.
    {
        CpuBackendOptions o;
        o.n_threads = 2;
        o.kernels = &test::bf16_reference_table();
        configs.push_back({std::string(isa_name(isa_active())) + " with the reference bf16 tiles, 2 threads",
                           std::make_unique<CpuBackend>(o)});
    }
    // The kernels of the ISAs above this CPU's, on emulated instructions
    // (tests/emulated.h): the AVX-512 dot products and quantizers, AMX tiles.
    for (const test::EmulatedTable& e : test::emulated_tables()) {
        CpuBackendOptions o;
        o.n_threads = 3;
        o.kernels = &e.table;
        configs.push_back({e.label + ", 3 threads", std::make_unique<CpuBackend>(o)});
    }
#ifdef MOELITE_HAVE_OPENBLAS
    add(isa_active(), 2, 1, ", BLAS for every size");
#endif
    return configs;
}

// Points every leaf and owning node of g at fresh host memory; views resolved.
struct HostArena {
    std::vector<std::vector<float>> blocks;
    void bind(Graph& g) {
        auto place = [&](Tensor* t) {
            blocks.emplace_back((t->nbytes() + 3) / 4 + 16, 0.0f);
            t->data = blocks.back().data();
        };
        for (Tensor* leaf : g.leaves()) place(leaf);
        for (Tensor* node : g.nodes()) {
            if (node->view_src)
                node->data = static_cast<char*>(node->view_src->data) + node->view_offset;
            else
                place(node);
        }
    }
};

void fill_f32(Tensor* t, uint32_t seed, float scale = 1.0f) {
    const auto v = random_floats(size_t(t->nelements()), seed, scale);
    std::memcpy(t->data, v.data(), v.size() * sizeof(float));
}

}  // namespace

TEST_CASE("backend ops: the CPU backend matches the references on every case, ISA and thread count") {
    const std::vector<OpCase> cases = backend_op_cases();
    auto configs = cpu_configs();
    MESSAGE(cases.size() << " cases x " << configs.size() << " CPU configurations");
    REQUIRE(cases.size() > 100);
    int failures = 0, repacked_runs = 0;
    for (const OpCase& c : cases) {
        PreparedOpCase prepared(c);
        for (CpuConfig& config : configs) {
            const OpCaseResult r = prepared.run(*config.backend);
            INFO(c.name << " [" << config.label << "]: " << r.detail);
            CHECK(r.supported);
            CHECK(r.passed);
            if (!r.supported || !r.passed) ++failures;
            if (r.adopted > 0) ++repacked_runs;
        }
    }
    CHECK(failures == 0);
    CHECK(test::amx_emulator_faults() == "");  // uses of the emulated tile unit the hardware would refuse
    // The weight cases of the types with a repacked layout ran repacked.
    MESSAGE(repacked_runs << " runs over repacked weights");
    CHECK(repacked_runs >= 4 * int(configs.size()));
}

TEST_CASE("backend ops: a harness comparison can fail") {
    // The same case with its output disturbed must be rejected by the measure.
    std::vector<double> want = {1.0, -2.0, 3.0, 0.5};
    std::vector<double> got = want;
    CHECK(nmse(got, want) == 0.0);
    got[2] += 0.01;
    CHECK(nmse(got, want) > 1e-6);
    got[2] = std::numeric_limits<double>::quiet_NaN();
    CHECK_FALSE(nmse(got, want) <= 1.0);
}

TEST_CASE("backend ops: a chain of dependent nodes computes in one call with a barrier between nodes") {
    // rms_norm -> mul -> mul_mat -> silu -> soft_max -> argsort, run as one graph on 3 threads,
    // must equal running it node by node on 1 thread (each element is computed the same way
    // whatever the split, so equality is exact).
    Graph g;
    Tensor* x = g.new_input(DType::F32, {96, 7});
    Tensor* norm_w = g.new_input(DType::F32, {96});
    Tensor* w = g.new_input(DType::F32, {96, 45});
    Tensor* h = g.mul(g.rms_norm(x, 1e-6f), norm_w);
    Tensor* y = g.soft_max(g.silu(g.mul_mat(w, h)), nullptr, 0.5f);
    Tensor* top = g.argsort_top_k(y, 4);
    g.build_forward(top);
    HostArena arena;
    arena.bind(g);
    fill_f32(x, 1);
    fill_f32(norm_w, 2);
    fill_f32(w, 3, 0.2f);

    CpuBackendOptions o;
    o.n_threads = 3;
    CpuBackend threaded(o);
    threaded.compute(g.nodes());
    const std::vector<float> y_threaded(static_cast<float*>(y->data), static_cast<float*>(y->data) + y->nelements());
    const std::vector<int32_t> top_threaded(static_cast<int32_t*>(top->data),
                                            static_cast<int32_t*>(top->data) + top->nelements());

    o.n_threads = 1;
    CpuBackend single(o);
    for (Tensor* node : g.nodes()) single.compute(std::span<Tensor* const>(&node, 1));
    CHECK(std::memcmp(y_threaded.data(), y->data, y_threaded.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(top_threaded.data(), top->data, top_threaded.size() * sizeof(int32_t)) == 0);
    // And it is the reference: the last node's input is the real softmax.
    double total = 0;
    for (float v : y_threaded) total += v;
    CHECK(total == doctest::Approx(7.0).epsilon(1e-5));
}

TEST_CASE("backend ops: the kernel scratch is sized once per graph shape, then reused") {
    Graph g;
    Tensor* w = g.new_input(DType::Q8_0, {256, 40});
    Tensor* x = g.new_input(DType::F32, {256, 6});
    Tensor* y = g.soft_max(g.mul_mat(w, x), nullptr, 1.0f);
    g.build_forward(y);
    HostArena arena;
    arena.bind(g);
    std::vector<float> wf(256 * 40, 0.5f);
    quant_traits(DType::Q8_0)->from_float(wf.data(), w->data, int64_t(wf.size()));
    fill_f32(x, 9);
    CpuBackendOptions o;
    o.n_threads = 2;
    CpuBackend cpu(o);
    CHECK(cpu.scratch_bytes() == 0);
    cpu.reserve(g.nodes());
    const size_t reserved = cpu.scratch_bytes();
    // At least the six activation rows converted to Q8_0.
    CHECK(reserved >= 6 * dtype_row_bytes(DType::Q8_0, 256));
    for (int i = 0; i < 3; ++i) {
        cpu.compute(g.nodes());
        CHECK(cpu.scratch_bytes() == reserved);
    }
}

TEST_CASE("backend ops: mul_mat_id never reads experts that no token chose") {
    // Unchosen experts hold NaN: one read would poison the output.
    const int64_t K = 64, M = 10, E = 8, k = 2, T = 3;
    Graph g;
    Tensor* w = g.new_input(DType::F32, {K, M, E});
    Tensor* x = g.new_input(DType::F32, {K, 1, T});
    Tensor* ids = g.new_input(DType::I32, {k, T});
    Tensor* out = g.mul_mat_id(w, x, ids);
    g.build_forward(out);
    HostArena arena;
    arena.bind(g);
    fill_f32(w, 5);
    fill_f32(x, 6);
    const int32_t chosen[k * T] = {3, 5, 5, 0, 3, 0};
    std::memcpy(ids->data, chosen, sizeof(chosen));
    float* wd = static_cast<float*>(w->data);
    for (int64_t e : {1, 2, 4, 6, 7})
        for (int64_t i = 0; i < K * M; ++i) wd[e * K * M + i] = std::numeric_limits<float>::quiet_NaN();
    const std::vector<double> want = ref_compute(*out);
    for (int threads : {1, 3}) {
        CpuBackendOptions o;
        o.n_threads = threads;
        CpuBackend cpu(o);
        cpu.compute(g.nodes());
        Tensor host = *out;
        const std::vector<double> got = ref_values(host);
        bool finite = true;
        for (double v : got) finite = finite && std::isfinite(v);
        CHECK(finite);
        CHECK(nmse(got, want) < 1e-10);
    }
}

TEST_CASE("backend ops: supports_op declines what the CPU kernels cannot compute") {
    CpuBackend cpu;
    Graph g;
    Tensor* q = g.new_tensor(DType::F32, {64, 4, 2});
    Tensor* k4 = g.new_tensor(DType::Q4_0, {64, 16, 2});
    Tensor* v16 = g.new_tensor(DType::F16, {64, 16, 2});
    CHECK_FALSE(cpu.supports_op(*g.flash_attn(q, k4, v16, nullptr, 1.0f)));  // Q4_0 keys: not a KV type
    Tensor* k16 = g.new_tensor(DType::F16, {64, 16, 2});
    CHECK(cpu.supports_op(*g.flash_attn(q, k16, v16, nullptr, 1.0f)));

    // A weight whose rows are not contiguous (a transposed view) cannot feed vec_dot.
    Tensor* w = g.transpose(g.new_tensor(DType::F32, {64, 16}));
    Tensor* x = g.new_tensor(DType::F32, {16, 3});
    CHECK_FALSE(cpu.supports_op(*g.mul_mat(w, x)));
    CHECK(cpu.supports_op(*g.mul_mat(g.new_tensor(DType::F32, {16, 64}), x)));

    // A hand-made node the builders would refuse: F16 activations.
    Tensor bad = *g.mul_mat(g.new_tensor(DType::F32, {16, 64}), x);
    Tensor x16 = *x;
    x16.type = DType::F16;
    bad.src[1] = &x16;
    CHECK_FALSE(cpu.supports_op(bad));

    // Types without any compute support.
    Tensor* iq = g.new_tensor(DType::IQ2_XXS, {256, 4});
    CHECK_FALSE(cpu.supports_op(*g.mul_mat(iq, g.new_tensor(DType::F32, {256, 1}))));
}

TEST_CASE("backend ops: buffers are aligned host memory; wrapped memory is used in place") {
    CpuBackend cpu;
    auto buf = cpu.alloc_buffer(1000);
    CHECK(buf->is_host());
    CHECK(buf->size() == 1000);
    CHECK(reinterpret_cast<uintptr_t>(buf->base()) % cpu.alignment() == 0);
    CHECK(&buf->backend() == &cpu);
    std::vector<float> host(8, 1.0f);
    auto wrapped = cpu.wrap_host_memory(host.data(), host.size() * sizeof(float));
    CHECK(wrapped->base() == host.data());

    Tensor t;
    const int64_t ne[] = {8};
    tensor_set_shape(t, DType::F32, ne, 1);
    t.data = wrapped->base();
    t.buffer = wrapped.get();
    const float src[2] = {5.0f, 6.0f};
    cpu.set_tensor(t, src, 3 * sizeof(float), sizeof(src));
    CHECK(host[3] == 5.0f);
    CHECK(host[4] == 6.0f);
    float back[2] = {};
    cpu.get_tensor(t, back, 3 * sizeof(float), sizeof(back));
    CHECK(back[1] == 6.0f);
}
