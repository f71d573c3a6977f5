// Persistent thread pool and spin-then-sleep barrier (see thread_pool.h).
//
// Memory ordering: a waiter spins on an atomic word with acquire loads; to
// sleep it first announces itself in a `sleepers` counter and re-checks the
// word (both sequentially consistent), then sleeps only while the word still
// holds the old value (the futex checks that atomically). The publisher
// stores the word and then reads `sleepers` (also seq_cst): either it sees
// the sleeper and wakes it, or the sleeper's re-check sees the new value.
// No wake-up system call is made while nobody sleeps.
#include "backends/cpu/thread_pool.h"

#include <chrono>
#include <climits>
#include <thread>

#include "core/error.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace moelite {
namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

inline void sleep_while_equal(std::atomic<uint32_t>& word, uint32_t old) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, old, nullptr, nullptr, 0);
#else
    word.wait(old, std::memory_order_seq_cst);
#endif
}

inline void wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
    word.notify_all();
#endif
}

// Spins for up to kSpinNanoseconds (a node of a decode graph takes a few to
// a hundred microseconds) until done() holds, then yields a few times (on an
// oversubscribed machine the thread we wait for may need this core), and
// reports whether done() came true.
template <typename Done>
bool spin_until(Done done) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::nanoseconds(SpinBarrier::kSpinNanoseconds);
    for (uint32_t i = 1;; ++i) {
        if (done()) return true;
        cpu_relax();
        if (i % 16 == 0 && clock::now() >= deadline) break;
    }
    for (int i = 0; i < 4; ++i) {
        if (done()) return true;
        std::this_thread::yield();
    }
    return done();
}

// Waits until `word` no longer holds `old`: spins, then sleeps.
void wait_for_change(std::atomic<uint32_t>& word, uint32_t old, std::atomic<uint32_t>& sleepers) {
    if (spin_until([&] { return word.load(std::memory_order_acquire) != old; })) return;
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    while (word.load(std::memory_order_seq_cst) == old) sleep_while_equal(word, old);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
}

// Moves `word` on and wakes whoever sleeps on it.
void publish(std::atomic<uint32_t>& word, uint32_t value, std::atomic<uint32_t>& sleepers) {
    word.store(value, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) != 0) wake_all(word);
}

}  // namespace

// state_ holds the phase in its high 16 bits and the arrivals of the current
// phase in the low 16: one cache line, one atomic add per arrival. The last
// thread to arrive stores (phase + 1, 0); no thread can arrive at the next
// phase before it has seen that store, so a plain store is enough.
void SpinBarrier::wait() {
    if (n_ <= 1) return;
    const uint32_t before = state_.fetch_add(1, std::memory_order_acq_rel);
    const uint32_t phase = before >> 16;
    if ((before & 0xffffu) + 1 == uint32_t(n_)) {
        state_.store(((phase + 1) & 0xffffu) << 16, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) != 0) wake_all(state_);
        return;
    }
    auto moved = [&](uint32_t v) { return (v >> 16) != phase; };
    if (spin_until([&] { return moved(state_.load(std::memory_order_acquire)); })) return;
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    for (uint32_t v = state_.load(std::memory_order_seq_cst); !moved(v); v = state_.load(std::memory_order_seq_cst))
        sleep_while_equal(state_, v);  // returns at once if another arrival changed the count
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads), barrier_(n_threads) {
    MOELITE_ASSERT(n_threads >= 1);
    workers_.reserve(size_t(n_threads - 1));
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
    stop_ = true;
    publish(generation_, generation_.load(std::memory_order_relaxed) + 1, sleepers_);
    for (auto& t : workers_) t.join();
}

int ThreadPool::default_threads() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : int(n);
}

void ThreadPool::run(JobFn fn, void* ctx) {
    if (n_threads_ == 1) {
        fn(ctx, 0, 1);
        return;
    }
    job_fn_ = fn;
    job_ctx_ = ctx;
    publish(generation_, generation_.load(std::memory_order_relaxed) + 1, sleepers_);
    fn(ctx, 0, n_threads_);
    barrier_.wait();  // every worker has finished its share
}

void ThreadPool::worker_main(int ith) {
    uint32_t seen = 0;
    for (;;) {
        wait_for_change(generation_, seen, sleepers_);
        seen = generation_.load(std::memory_order_acquire);
        if (stop_) return;
        job_fn_(job_ctx_, ith, n_threads_);
        barrier_.wait();
    }
}

}  // namespace moelite
