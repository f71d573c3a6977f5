#include "core/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace moelite {

MappedFile::MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        fail("%s: cannot stat: %s", path.c_str(), std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("%s: not a regular file", path.c_str());
    }
    size_ = size_t(st.st_size);
    if (size_ > 0) {
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            ::close(fd);
            fail("%s: cannot map %zu bytes: %s", path.c_str(), size_, std::strerror(e));
        }
        data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);  // the mapping keeps the file open
}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

namespace {

// madvise over the whole pages that hold [offset, offset + bytes) of a
// mapping of `size` bytes at `data` (clipped to it); nothing when empty.
void advise_pages(const uint8_t* data, size_t size, size_t offset, size_t bytes, int advice) {
    if (!data || offset >= size || bytes == 0) return;
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    const size_t start = offset / page * page;
    const size_t end = std::min(size, offset + bytes);
    ::madvise(const_cast<uint8_t*>(data) + start, end - start, advice);
}

}  // namespace

void MappedFile::advise_dontneed(size_t offset, size_t bytes) const {
    advise_pages(data_, size_, offset, bytes, MADV_DONTNEED);
}

void MappedFile::advise_random(size_t offset, size_t bytes) const {
    advise_pages(data_, size_, offset, bytes, MADV_RANDOM);
}

size_t MappedFile::resident_bytes(size_t offset, size_t bytes) const {
    if (!data_ || offset >= size_ || bytes == 0) return 0;
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    const size_t start = offset / page * page;
    const size_t end = std::min(size_, offset + bytes);
    std::vector<unsigned char> in_core((end - start + page - 1) / page);
    if (::mincore(const_cast<uint8_t*>(data_) + start, end - start, in_core.data()) != 0)
        fail("%s: mincore failed: %s", path_.c_str(), std::strerror(errno));
    size_t resident = 0;
    for (size_t i = 0; i < in_core.size(); ++i) {
        if (!(in_core[i] & 1)) continue;
        // Count only the part of each page inside [offset, end).
        const size_t lo = std::max(offset, start + i * page), hi = std::min(end, start + (i + 1) * page);
        resident += hi - lo;
    }
    return resident;
}

size_t MappedFile::mapped_bytes(size_t offset, size_t bytes) const {
    if (!data_ || offset >= size_ || bytes == 0) return 0;
    const size_t page = size_t(::sysconf(_SC_PAGESIZE));
    const size_t end = std::min(size_, offset + bytes);
    const uintptr_t first = (uintptr_t(data_) + offset) / page, last = (uintptr_t(data_) + end - 1) / page;
    std::vector<uint64_t> entries(last - first + 1);
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("/proc/self/pagemap: cannot open: %s", std::strerror(errno));
    const size_t want = entries.size() * sizeof(uint64_t);
    const ssize_t got = ::pread(fd, entries.data(), want, off_t(first * sizeof(uint64_t)));
    ::close(fd);
    if (got != ssize_t(want)) fail("/proc/self/pagemap: short read");
    size_t mapped = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
        if (!(entries[i] >> 63)) continue;  // bit 63: page present
        const uintptr_t page_start = (first + i) * page - uintptr_t(data_);
        const size_t lo = std::max(offset, size_t(page_start)), hi = std::min(end, size_t(page_start + page));
        mapped += hi - lo;
    }
    return mapped;
}

void prefetch_mapped(const void* ptr, size_t bytes) {
    if (!ptr || bytes == 0) return;
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t start = uintptr_t(ptr) / page * page;
    const uintptr_t last = (uintptr_t(ptr) + bytes - 1) / page * page;
    // Warm case first: when the first, middle and last pages are resident the
    // range almost surely is, and MADV_WILLNEED would only walk the page cache
    // page by page (per decoded token, for every chosen expert).
    bool resident = true;
    for (uintptr_t p : {start, (start + (last - start) / 2) / page * page, last}) {
        unsigned char v = 0;
        if (::mincore(reinterpret_cast<void*>(p), page, &v) != 0 || !(v & 1)) {
            resident = false;
            break;
        }
    }
    if (!resident) ::madvise(reinterpret_cast<void*>(start), last + page - start, MADV_WILLNEED);
}

void require_replaceable_file(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
        fail("%s: exists and is not a regular file", path.c_str());
}

void page_cache_evict(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
    ::fdatasync(fd);  // dirty pages cannot be dropped: write a freshly written file back first
    const int rc = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // returns the error, not -1
    ::close(fd);
    if (rc != 0) fail("%s: cannot drop from the page cache: %s", path.c_str(), std::strerror(rc));
}

size_t page_cache_resident(const std::string& path) {
    MappedFile map(path);
    return map.resident_bytes(0, map.size());
}

}  // namespace moelite
