// The CPU backend's op kernels: one function per op, the scratch each needs,
// and the type checks behind supports_op. Internal to backends/cpu.
//
// Every kernel is called on all threads of the pool at once with the same
// node; thread ith of nth does its share (usually a range of rows) and may
// call ctx.barrier() when a later phase reads what others wrote (all threads
// call it the same number of times). Kernels write only the node's own data
// (for cpy: the destination view it aliases) and read sources through their
// strides, so permuted and sliced views need no copies. Shared scratch comes
// from ctx.wdata, sized by op_work_size() before the run; per-thread scratch
// is the slice of it at ctx.thread_scratch(ith).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "backends/cpu/thread_pool.h"
#include "core/graph.h"
#include "core/tensor.h"
#include "quant/kernels.h"

namespace moelite::cpu {

// What take_units() gave this thread: units [begin, end).
struct UnitTake {
    int64_t begin = 0, end = 0;
    bool shared = false;  // from the shared counter (start_units); else one even share
    bool even_share_taken = false;
};

struct OpContext {
    int ith = 0;
    int nth = 1;
    ThreadPool* pool = nullptr;  // null when run single-threaded outside a pool
    const KernelTable* kt = nullptr;
    int64_t blas_min_cols = 0;    // mul_mat: BLAS from this many activation rows; 0 = never
    char* wdata = nullptr;        // shared scratch, op_work_size() bytes
    size_t shared_bytes = 0;      // bytes at the start of wdata shared by all threads
    size_t per_thread_bytes = 0;  // then nth slices of this many bytes
    // One counter shared by the threads for take_units(); null where there is
    // none (the op then splits its units evenly).
    std::atomic<int64_t>* next_unit = nullptr;

    void barrier() const {
        if (pool) pool->barrier();
    }
    char* thread_scratch() const { return wdata + shared_bytes + size_t(ith) * per_thread_bytes; }

    // Units taken as the threads get to them, so that a thread slowed down
    // (by the other programs of a shared machine, or the memory they use) is
    // not waited for at the barrier: `UnitTake t = start_units();` before a
    // barrier, then `while (take_units(n, min_take, &t))` after it. Each take
    // is a share of what is left (a quarter of it with 2 threads, at least
    // min_take units), so the first takes are long contiguous stretches (a
    // decode streams its weights) and the last ones short. The barrier
    // between nodes keeps the next op's start from overtaking this op's last
    // take. A default UnitTake (or no counter) splits the units evenly,
    // min_take aside.
    UnitTake start_units() const;
    bool take_units(int64_t n, int64_t min_take, UnitTake* take) const;
};

// Scratch an op needs: `shared` bytes for all threads, then `per_thread` bytes each.
struct WorkSize {
    size_t shared = 0;
    size_t per_thread = 0;
};

inline constexpr size_t kScratchAlign = 64;
inline size_t align_up(size_t n, size_t a = kScratchAlign) { return (n + a - 1) / a * a; }

// [r0, r1): thread ith's share of n items, split as evenly as possible.
inline void split_range(int64_t n, int ith, int nth, int64_t* r0, int64_t* r1) {
    const int64_t per = n / nth, rem = n % nth;
    *r0 = ith * per + (ith < rem ? ith : rem);
    *r1 = *r0 + per + (ith < rem ? 1 : 0);
}

// The conversion function of `type` for rows: the kernel table's where it has
// one, else the reference (quant/quant.h). Null when neither exists.
FromFloatFn row_from_float(const KernelTable& kt, DType type);
ToFloatFn row_to_float(const KernelTable& kt, DType type);
// Whether rows of `type` convert to F32 at all (supports_op checks).
ToFloatFn row_to_float(DType type);
// vec_dot of weight type `type` from the table (falls back to the reference);
// vdt receives the activation type it pairs with.
VecDotFn row_vec_dot(const KernelTable& kt, DType type, DType* vdt);

// Whether the CPU kernels handle this node's op, types and layouts.
bool op_supported(const Tensor& node);
WorkSize op_work_size(const Tensor& node, const KernelTable& kt, int nth, int64_t blas_min_cols);
// Runs thread ith's share of node.
void op_compute(const Tensor& node, const OpContext& ctx);

// Per-op kernels (ops_*.cpp) and their checks.
void op_get_rows(const Tensor& node, const OpContext& ctx);
void op_add(const Tensor& node, const OpContext& ctx);
void op_mul(const Tensor& node, const OpContext& ctx);
void op_scale(const Tensor& node, const OpContext& ctx);
void op_silu(const Tensor& node, const OpContext& ctx);
void op_sigmoid(const Tensor& node, const OpContext& ctx);
void op_swiglu(const Tensor& node, const OpContext& ctx);
void op_rms_norm(const Tensor& node, const OpContext& ctx);
void op_rope(const Tensor& node, const OpContext& ctx);
void op_soft_max(const Tensor& node, const OpContext& ctx);
void op_argsort_top_k(const Tensor& node, const OpContext& ctx);
void op_sum_rows(const Tensor& node, const OpContext& ctx);
void op_div(const Tensor& node, const OpContext& ctx);
void op_flash_attn(const Tensor& node, const OpContext& ctx);
void op_mul_mat(const Tensor& node, const OpContext& ctx);
void op_mul_mat_id(const Tensor& node, const OpContext& ctx);
void op_concat(const Tensor& node, const OpContext& ctx);
void op_cont(const Tensor& node, const OpContext& ctx);
void op_cpy(const Tensor& node, const OpContext& ctx);

WorkSize work_size_rope(const Tensor& node);
WorkSize work_size_argsort_top_k(const Tensor& node);
WorkSize work_size_flash_attn(const Tensor& node, int nth);
WorkSize work_size_mul_mat(const Tensor& node, const KernelTable& kt, int nth, int64_t blas_min_cols);
WorkSize work_size_mul_mat_id(const Tensor& node, const KernelTable& kt, int nth);
WorkSize work_size_copy(const Tensor& node);

bool supports_mul_mat(const Tensor& node);
bool supports_mul_mat_id(const Tensor& node);
bool supports_flash_attn(const Tensor& node);

}  // namespace moelite::cpu
