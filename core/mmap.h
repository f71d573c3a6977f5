// A read-only memory map of a whole file. Model weights point straight into
// it: nothing is copied on load, and pages the computation never touches are
// never read from disk.
//
// Also here: the page-cache tools the memory benchmarks use (bench/moe-rss.sh):
// how much of a file is cached (mincore) and dropping it from the cache
// (posix_fadvise), so a run can start cold without root.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moelite {

class MappedFile {
  public:
    // Maps `path` read-only; throws Error naming the file if it cannot.
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::string& path() const { return path_; }
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

    // Says [offset, offset + bytes) is no longer needed: its pages leave this
    // process's resident set (they stay in the page cache and are read again
    // if touched). Streaming readers call it to keep memory bounded.
    void advise_dontneed(size_t offset, size_t bytes) const;
    // Hints that [offset, offset + bytes) is read at random: a page fault then
    // reads that page alone instead of the kernel's read-around window (by
    // default 128 KiB centred on the fault), so slices of a tensor that are
    // never computed on (unchosen experts) are not read along with their
    // neighbours. Pages already cached are still mapped around a fault
    // (fault-around, 64 KiB): that costs no I/O.
    void advise_random(size_t offset, size_t bytes) const;
    // Bytes of [offset, offset + bytes) that are in the page cache (whole
    // pages, mincore). Root or the file's owner sees the whole cache; others
    // see only the pages this process has mapped.
    size_t resident_bytes(size_t offset, size_t bytes) const;
    // Bytes of [offset, offset + bytes) mapped into this process's page
    // tables (/proc/self/pagemap): what its resident set counts, which is
    // less than the page cache holds after read-ahead. Linux only; Error
    // where pagemap cannot be read.
    size_t mapped_bytes(size_t offset, size_t bytes) const;

  private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// Starts reading [ptr, ptr + bytes) of a file mapping into the page cache
// without waiting (MADV_WILLNEED), for code that holds only pointers into the
// mapping: mul_mat_id can prefetch exactly the slices of the experts the
// router chose, so that their page faults find the pages cached and trigger
// no read-around (bench/README.md measures it). Skipped when the range's
// first, middle and last pages are resident (three mincore calls), so the warm
// case costs next to nothing. A no-op on memory that is not a file mapping.
void prefetch_mapped(const void* ptr, size_t bytes);

// Fails (naming the path) unless `path` is absent or a regular file: a writer
// that renames a temporary file over it would as readily replace a device
// node or a directory's entry (a root user's "-o /dev/null").
void require_replaceable_file(const std::string& path);

// Drops the file's clean pages from the page cache (posix_fadvise DONTNEED;
// dirty pages are written back first), as far as the kernel agrees to: pages
// a running process maps stay, and some filesystems (tmpfs) ignore the advice
// (check with page_cache_resident). Throws Error when the file cannot be opened.
void page_cache_evict(const std::string& path);
// Bytes of the file in the page cache (maps it and asks mincore; reads nothing).
size_t page_cache_resident(const std::string& path);

}  // namespace moelite
