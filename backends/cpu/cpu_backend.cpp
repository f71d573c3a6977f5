// CpuBackend (see cpu_backend.h): host buffers, tensor copies, and the one
// dispatch per compute() that walks the nodes on every thread.
#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "backends/cpu/ops.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "quant/repack.h"

#ifdef MOELITE_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace moelite {
namespace {

class CpuBuffer final : public Buffer {
public:
    // `memory` owns what `base` points to; empty for memory held elsewhere (a file mapping).
    CpuBuffer(Backend& backend, void* base, size_t size, HostMemory memory)
        : backend_(backend), base_(base), size_(size), memory_(std::move(memory)) {}
    Backend& backend() const override { return backend_; }
    void* base() const override { return base_; }
    size_t size() const override { return size_; }
    bool is_host() const override { return true; }
    // Whether the memory is the backend's own (alloc_buffer), not wrapped.
    bool owns_memory() const { return memory_ != nullptr; }

private:
    Backend& backend_;
    void* base_;
    size_t size_;
    HostMemory memory_;
};

bool needs_compute(const Tensor& node) {
    return node.op != Op::None && !op_is_view(node.op) && node.nelements() > 0;
}

}  // namespace

// One compute() call: the nodes to run and each one's scratch layout.
struct CpuBackend::Job {
    std::span<Tensor* const> nodes;
    const KernelTable* kernels;
    ThreadPool* pool;
    char* scratch;
    int64_t blas_min_cols;
    alignas(64) mutable std::atomic<int64_t> next_unit{0};  // OpContext::take_units
};

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : blas_min_cols_(options.blas_min_cols), adopt_weights_(options.adopt_weights) {
    const int n = options.n_threads > 0 ? options.n_threads : ThreadPool::default_threads();
    pool_ = std::make_unique<ThreadPool>(n);
    kernels_ = &kernels();
    if (options.isa) set_isa(*options.isa);
    if (options.kernels) kernels_ = options.kernels;
#ifdef MOELITE_HAVE_OPENBLAS
    // Our threads split the sgemm calls between them; OpenBLAS's own pool
    // would compete with them for the same cores.
    openblas_set_num_threads(1);
#endif
}

CpuBackend::~CpuBackend() = default;

void CpuBackend::set_n_threads(int n_threads) {
    MOELITE_ASSERT(n_threads >= 1);
    if (n_threads != pool_->size()) pool_ = std::make_unique<ThreadPool>(n_threads);
}

void CpuBackend::set_isa(Isa isa) {
    const std::vector<Isa> supported = isa_supported();
    if (std::find(supported.begin(), supported.end(), isa) == supported.end())
        fail("CPU backend: instruction set %s is not supported on this machine", isa_name(isa));
    kernels_ = &kernel_table(isa);
}

std::unique_ptr<Buffer> CpuBackend::alloc_buffer(size_t bytes) {
    HostMemory memory = allocate_host_memory(bytes, kAlignment, "CPU backend");
    void* base = memory.get();
    return std::make_unique<CpuBuffer>(*this, base, bytes, std::move(memory));
}

std::unique_ptr<Buffer> CpuBackend::wrap_host_memory(void* ptr, size_t bytes) {
    return std::make_unique<CpuBuffer>(*this, ptr, bytes, HostMemory());
}

std::unique_ptr<Buffer> CpuBackend::adopt_weight(Tensor& t, WeightReaders readers) {
    if (!adopt_weights_ || t.is_view() || (t.flags & kTensorRepacked) || t.data == nullptr) return nullptr;
    if (t.ne[2] != 1 || t.ne[3] != 1 || !t.rows_contiguous()) return nullptr;
    // Repacked: the types whose interleaved decode (one activation row, the
    // weights streaming from memory) beats the plain tile, Q4_0 and Q5_0,
    // whose plain decode tile spends its time on per-block float work
    // (R1-Distill-Qwen-1.5B Q4_0: 19 -> 25-28 t/s). For Q8_0, Q4_K and Q6_K
    // the plain tile streams as fast or faster (Q4_K_M file: 22 against 19-21
    // t/s repacked; Q6_K's repacked decode 160-200 against 110-120 ns per
    // output of 1536 in "tile speed" with TILE_M=16384), and mul_mat repacks
    // them unit by unit in prefill only (backends/cpu/ops_matmul.cpp).
    // A weight get_rows reads too keeps the file's layout.
    const bool repack = readers == WeightReaders::MulMatOnly && (t.type == DType::Q4_0 || t.type == DType::Q5_0) &&
                        repack_supported(t.type, t.ne[0], t.ne[1]) && fast_repacked_gemm(*kernels_, t.type);
    // Copied as they are: the other weights. Decode streams them every
    // token, and from huge pages rather than the file's 4 KiB ones it goes
    // faster (Q4_K_M file, alternating runs: 18.0-19.8 -> 20.1-22.4 t/s;
    // bench/README.md). Those under a huge page (norms, biases, small
    // projections) gain no speed from the copy, but read through the mapping
    // they bring back copied neighbours: where the page cache holds the file in
    // large folios (Linux 6.x, after a sequential read), a fault maps the
    // whole folio. R1-Qwen-1.5B Q8_0, the file last read by llama.cpp:
    // 190 MiB of copied weights back in the resident set during a bench run,
    // none once the small ones are copied too. Not a weight already in
    // memory of a CPU backend's own.
    if (!repack) {
        const auto* held = dynamic_cast<const CpuBuffer*>(t.buffer);
        if (held && held->owns_memory()) return nullptr;
    }
    const size_t row_bytes = t.row_bytes();
    auto buffer = alloc_buffer(row_bytes * size_t(t.ne[1]));
    // Row ranges (whole groups when repacking) split over the pool: bound by memory.
    struct Adopt {
        const Tensor& t;
        void* dst;
        bool repack;
        RepackChunksFn chunks;
    } job{t, buffer->base(), repack, kernels_->repack_chunks};
    pool_->run(
        [](void* ctx, int ith, int nth) {
            const Adopt& a = *static_cast<const Adopt*>(ctx);
            const int64_t unit = a.repack ? kRepackRows : 1;
            int64_t u0, u1;
            cpu::split_range(a.t.ne[1] / unit, ith, nth, &u0, &u1);
            if (u0 >= u1) return;
            const size_t first = size_t(u0 * unit), rows = size_t((u1 - u0) * unit);
            const size_t row_bytes = a.t.row_bytes();
            const char* src = static_cast<const char*>(a.t.data) + first * a.t.nb[1];
            char* dst = static_cast<char*>(a.dst) + first * row_bytes;  // rows made contiguous
            if (a.repack) {
                repack_rows(a.t.type, a.t.ne[0], int64_t(rows), src, a.t.nb[1], dst, a.chunks);
            } else if (a.t.nb[1] == row_bytes) {
                std::memcpy(dst, src, rows * row_bytes);
            } else {
                for (size_t r = 0; r < rows; ++r) std::memcpy(dst + r * row_bytes, src + r * a.t.nb[1], row_bytes);
            }
        },
        &job);
    t.data = buffer->base();
    t.buffer = buffer.get();
    t.nb[1] = row_bytes;
    t.nb[2] = t.nb[3] = row_bytes * size_t(t.ne[1]);
    if (repack) t.flags |= kTensorRepacked;
    return buffer;
}

bool CpuBackend::supports_op(const Tensor& node) const { return cpu::op_supported(node); }

void CpuBackend::set_tensor(Tensor& t, const void* src, size_t offset, size_t size) {
    MOELITE_ASSERT(t.data != nullptr && offset + size <= t.nbytes());
    std::memcpy(static_cast<char*>(t.data) + offset, src, size);
}

void CpuBackend::get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) {
    MOELITE_ASSERT(t.data != nullptr && offset + size <= t.nbytes());
    std::memcpy(dst, static_cast<const char*>(t.data) + offset, size);
}

size_t CpuBackend::scratch_needed(std::span<Tensor* const> nodes) {
    const int nth = pool_->size();
    size_t need = 0;
    for (const Tensor* node : nodes) {
        if (!needs_compute(*node)) continue;
        const cpu::WorkSize ws = cpu::op_work_size(*node, *kernels_, nth, blas_min_cols_);
        need = std::max(need, cpu::align_up(ws.shared) + size_t(nth) * cpu::align_up(ws.per_thread));
    }
    return need;
}

void CpuBackend::reserve(std::span<Tensor* const> nodes) {
    const size_t need = scratch_needed(nodes);
    if (need <= scratch_size_) return;
    scratch_ = allocate_host_memory(need, kAlignment, "CPU backend");
    scratch_size_ = need;
}

void CpuBackend::run_job(void* ctx, int ith, int nth) {
    const Job& job = *static_cast<const Job*>(ctx);
    cpu::OpContext oc;
    oc.ith = ith;
    oc.nth = nth;
    oc.pool = job.pool;
    oc.kt = job.kernels;
    oc.wdata = job.scratch;
    oc.blas_min_cols = job.blas_min_cols;
    oc.next_unit = &job.next_unit;
    bool first = true;
    for (const Tensor* node : job.nodes) {
        if (!needs_compute(*node)) continue;
        // Every thread computes the same layout; no shared state to publish.
        if (!first) oc.barrier();
        first = false;
        const cpu::WorkSize ws = cpu::op_work_size(*node, *job.kernels, nth, job.blas_min_cols);
        oc.shared_bytes = cpu::align_up(ws.shared);
        oc.per_thread_bytes = cpu::align_up(ws.per_thread);
        cpu::op_compute(*node, oc);
    }
}

void CpuBackend::compute(std::span<Tensor* const> nodes) {
    for (const Tensor* node : nodes) {
        if (!needs_compute(*node)) continue;
        MOELITE_ASSERT_MSG(cpu::op_supported(*node), op_name(node->op));
        MOELITE_ASSERT_MSG(node->data != nullptr, "CPU backend: node without data");
    }
    reserve(nodes);
    Job job{nodes, kernels_, pool_.get(), static_cast<char*>(scratch_.get()), blas_min_cols_};
    pool_->run(run_job, &job);
}

}  // namespace moelite
