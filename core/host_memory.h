// Large host allocations for data that is streamed every token: the weights
// the CPU backend keeps in memory of its own (repacked or copied from the
// file), the KV cache, the activation arena and op scratch, the bandwidth
// probe's buffer.
//
// Blocks of 2 MiB or more are mapped on their own (anonymous mmap, not the
// malloc heap, so nothing else ever lands in their pages), aligned to 2 MiB,
// and their whole huge pages are offered to the kernel's transparent huge
// pages (madvise MADV_HUGEPAGE; Debian's default THP mode only backs such
// regions). Decode reads every weight once per token, and on 4 KiB pages that
// is a TLB miss every 4 KiB: bench/README.md measures what huge pages gain.
// Where the kernel declines, the block is ordinary memory.
#pragma once

#include <cstddef>
#include <memory>

namespace moelite {

inline constexpr size_t kHugePageBytes = size_t(2) << 20;

struct HostMemoryFree {
    size_t mapped_bytes = 0;  // length of the block's own mapping; 0: from the heap
    void operator()(void* p) const;
};
using HostMemory = std::unique_ptr<void, HostMemoryFree>;

// At least `bytes` bytes, aligned to `alignment` (a power of two, at most
// kHugePageBytes), or to kHugePageBytes when the block is that large. Only
// the huge pages that the first `bytes` fill are offered to THP: a partial
// last one would make the resident set grow by up to 2 MiB. Throws Error
// naming `what` when the memory cannot be had.
HostMemory allocate_host_memory(size_t bytes, size_t alignment, const char* what);

}  // namespace moelite
