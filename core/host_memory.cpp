#include "core/host_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>  // aligned_alloc, free

#include "core/error.h"

namespace moelite {

void HostMemoryFree::operator()(void* p) const {
    std::free(p);
}

HostMemory allocate_host_memory(size_t bytes, size_t alignment, const char* what) {
    MOELITE_ASSERT(alignment > 0 && (alignment & (alignment - 1)) == 0);
    const size_t huge_bytes = bytes / kHugePageBytes * kHugePageBytes;
    if (huge_bytes > 0) alignment = std::max(alignment, kHugePageBytes);
    const size_t rounded = std::max(alignment, (bytes + alignment - 1) / alignment * alignment);
    void* p = std::aligned_alloc(alignment, rounded);
    if (!p) fail("%s: out of memory allocating %zu bytes", what, rounded);
#ifdef MADV_HUGEPAGE
    // Advice only: a kernel without THP refuses it, and the memory works as is.
    if (huge_bytes > 0) ::madvise(p, huge_bytes, MADV_HUGEPAGE);
#endif
    return HostMemory(p);
}

}  // namespace moelite
