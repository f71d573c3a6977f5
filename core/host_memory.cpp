#include "core/host_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace moelite {

namespace {

size_t round_up(size_t n, size_t to) {
    return (n + to - 1) / to * to;
}

}  // namespace

void HostMemoryFree::operator()(void* p) const {
    if (mapped_bytes > 0) {
        ::munmap(p, mapped_bytes);
    } else {
        std::free(p);
    }
}

HostMemory allocate_host_memory(size_t bytes, size_t alignment, const char* what) {
    MOELITE_ASSERT(alignment > 0 && (alignment & (alignment - 1)) == 0 && alignment <= kHugePageBytes);
    if (bytes < kHugePageBytes) {
        const size_t rounded = std::max(alignment, round_up(bytes, alignment));
        void* p = std::aligned_alloc(alignment, rounded);
        if (!p) fail("%s: out of memory allocating %zu bytes", what, rounded);
        return HostMemory(p, HostMemoryFree{});
    }
    // Map a huge page more than needed, then unmap the ends that fall outside
    // the 2 MiB-aligned block.
    const size_t length = round_up(bytes, size_t(::sysconf(_SC_PAGESIZE)));
    void* raw = ::mmap(nullptr, length + kHugePageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) fail("%s: cannot map %zu bytes: %s", what, length, std::strerror(errno));
    const uintptr_t start = uintptr_t(raw), aligned = round_up(start, kHugePageBytes);
    if (aligned > start) ::munmap(raw, aligned - start);
    const uintptr_t end = start + length + kHugePageBytes;
    if (end > aligned + length) ::munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
    void* p = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
    // Advice only: a kernel without THP refuses it, and the memory works as is.
    ::madvise(p, bytes / kHugePageBytes * kHugePageBytes, MADV_HUGEPAGE);
#endif
    return HostMemory(p, HostMemoryFree{length});
}

}  // namespace moelite
