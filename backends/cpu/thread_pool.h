// ThreadPool: the CPU backend's persistent workers and the barrier between
// graph nodes.
//
// The workers are created once and live as long as the pool. run(job) hands
// one job to every thread (the caller is thread 0, the workers 1..n-1); each
// calls job(ith, nth) and splits its own share of the work by its index. A
// job that computes several graph nodes calls barrier() between them, so one
// dispatch covers a whole graph and a node costs one barrier, not a wake-up
// of every thread.
//
// Waiting is staged: a thread spins (with the CPU's pause hint) for a bounded
// time, yields a few times, then sleeps on a futex (std::atomic::wait
// elsewhere), so a short wait costs a few hundred nanoseconds and a long one
// costs no core.
// Nothing allocates after construction.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace moelite {

// A reusable barrier for a fixed number of threads (at most 65535): a phase
// counter and an arrival count in one atomic word, spin-then-sleep waiting. Every thread of the pool must call wait()
// the same number of times.
class SpinBarrier {
public:
    explicit SpinBarrier(int n_threads = 1) : n_(n_threads) {}
    int size() const { return n_; }

    // Returns once all n threads have arrived.
    void wait();

    // How long a waiter spins before it yields and then sleeps.
    static constexpr int64_t kSpinNanoseconds = 50000;

private:
    alignas(64) std::atomic<uint32_t> state_{0};  // phase << 16 | arrived
    alignas(64) std::atomic<uint32_t> sleepers_{0};
    int n_;
};

class ThreadPool {
public:
    using JobFn = void (*)(void* ctx, int ith, int nth);

    // n_threads >= 1 in all; n_threads - 1 workers are started here.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Runs fn(ctx, ith, nth) on every thread and returns when all are done.
    // Not re-entrant: one run at a time (the CPU backend serialises compute).
    void run(JobFn fn, void* ctx);

    // For use inside a job: returns once every thread of the pool arrived.
    void barrier() {
        if (n_threads_ > 1) barrier_.wait();
    }

    // Default thread count: the hardware threads (at least 1).
    static int default_threads();

private:
    void worker_main(int ith);

    int n_threads_;
    std::vector<std::thread> workers_;
    SpinBarrier barrier_;

    // The job of the current generation; workers wait for generation_ to move.
    JobFn job_fn_ = nullptr;
    void* job_ctx_ = nullptr;
    bool stop_ = false;
    alignas(64) std::atomic<uint32_t> generation_{0};
    alignas(64) std::atomic<uint32_t> sleepers_{0};
};

}  // namespace moelite
