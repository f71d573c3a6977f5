// A read-only memory map of a whole file. Model weights point straight into
// it: nothing is copied on load, and pages the computation never touches are
// never read from disk.
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

    // Hints that [offset, offset + bytes) will be read soon / sequentially.
    void advise_willneed(size_t offset, size_t bytes) const;
    void advise_sequential() const;
    // Says [offset, offset + bytes) is no longer needed: its pages leave this
    // process's resident set (they stay in the page cache and are read again
    // if touched). Streaming readers call it to keep memory bounded.
    void advise_dontneed(size_t offset, size_t bytes) const;

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace moelite
