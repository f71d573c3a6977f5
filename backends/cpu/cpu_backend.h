// CpuBackend: the reference backend. Host memory, a persistent thread pool,
// and a kernel for every op of core/graph.h (backends/cpu/ops_*.cpp).
//
// compute() runs the nodes in order on all threads of the pool in one
// dispatch, with a barrier between nodes; views and leaves are skipped. The
// scratch the kernels need (converted activations for mul_mat, per-thread
// rows) is one buffer kept by the backend and grown only when a graph needs
// more than any before it, so steady-state decode allocates nothing; call
// reserve() with a graph's nodes to take that allocation up front.
//
// The kernel table (quant/kernels.h) defaults to the best ISA of the machine
// (kernels()); tests force each ISA of isa_supported() through the options or
// set_isa(). compute() is synchronous (synchronize() has nothing to wait for)
// and one backend object computes one graph at a time.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/thread_pool.h"
#include "core/host_memory.h"
#include "quant/kernels.h"

namespace moelite {

struct CpuBackendOptions {
    int n_threads = 0;       // 0: every hardware thread
    std::optional<Isa> isa;  // unset: isa_active()
    // A kernel table of one's own, in place of isa's; it must outlive the
    // backend. Tests use it to run a path whose kernel this CPU lacks with
    // the kernel's reference (the bf16 tile product without AMX).
    const KernelTable* kernels = nullptr;
    // mul_mat with F32/F16/BF16 weights goes to OpenBLAS's sgemm from this
    // many activation rows (builds with MOELITE_HAVE_OPENBLAS); 0 never does.
    int64_t blas_min_cols = kDefaultBlasMinCols;
    // adopt_weight() copies weights into memory of the backend's own (huge
    // pages where the kernel gives them): repacked where the type's
    // interleaved layout (quant/repack.h) wins in decode too and has a SIMD
    // kernel in the backend's table (Q4_0, Q5_0), as they are otherwise;
    // false keeps every weight where it is (the mapped file).
    bool adopt_weights = true;

    // Where sgemm starts to win over the vec_dot path (see ops_matmul.cpp).
    static constexpr int64_t kDefaultBlasMinCols = 32;
};

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(const CpuBackendOptions& options = {});
    ~CpuBackend() override;

    std::string name() const override { return "CPU"; }
    size_t alignment() const override { return kAlignment; }

    std::unique_ptr<Buffer> alloc_buffer(size_t bytes) override;
    std::unique_ptr<Buffer> wrap_host_memory(void* ptr, size_t bytes) override;
    std::unique_ptr<Buffer> adopt_weight(Tensor& t, WeightReaders readers) override;

    bool supports_op(const Tensor& node) const override;

    void set_tensor(Tensor& t, const void* src, size_t offset, size_t size) override;
    void get_tensor(const Tensor& t, void* dst, size_t offset, size_t size) override;

    void compute(std::span<Tensor* const> nodes) override;
    void synchronize() override {}

    // Grows the scratch to what these nodes need, so compute() will not allocate.
    void reserve(std::span<Tensor* const> nodes);
    // Bytes of kernel scratch held now (grows, never shrinks).
    size_t scratch_bytes() const { return scratch_size_; }

    int n_threads() const { return pool_->size(); }
    // Replaces the pool (threads are joined and started again): not per token.
    void set_n_threads(int n_threads);
    Isa isa() const { return kernels_->isa; }
    // `isa` must be in isa_supported(); throws Error otherwise.
    void set_isa(Isa isa);

    static constexpr size_t kAlignment = 64;

private:
    struct Job;
    static void run_job(void* ctx, int ith, int nth);
    size_t scratch_needed(std::span<Tensor* const> nodes);

    std::unique_ptr<ThreadPool> pool_;
    const KernelTable* kernels_;
    int64_t blas_min_cols_;
    bool adopt_weights_;
    HostMemory scratch_;
    size_t scratch_size_ = 0;
};

}  // namespace moelite
