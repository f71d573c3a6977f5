// Large host allocations for data that is streamed every token: repacked
// weights, the KV cache, the activation arena, the bandwidth probe's buffer.
//
// Blocks of 2 MiB or more are aligned to 2 MiB and offered to the kernel's
// transparent huge pages (madvise MADV_HUGEPAGE; Debian's default THP mode
// only backs such regions). Decode reads every weight once per token, and on
// 4 KiB pages that is a TLB miss every 4 KiB: bench/README.md measures what
// huge pages gain. Where the kernel declines, the block is ordinary memory.
#pragma once

#include <cstddef>
#include <memory>

namespace moelite {

inline constexpr size_t kHugePageBytes = size_t(2) << 20;

struct HostMemoryFree {
    void operator()(void* p) const;
};
using HostMemory = std::unique_ptr<void, HostMemoryFree>;

// At least `bytes` bytes, aligned to `alignment` (a power of two), or to
// kHugePageBytes when the block is that large; its whole huge pages (the
// part of the first `bytes` that fills them: a partial last one would make
// the resident set grow by up to 2 MiB) are offered to THP.
// Throws Error naming `what` when the memory cannot be had.
HostMemory allocate_host_memory(size_t bytes, size_t alignment, const char* what);

}  // namespace moelite
