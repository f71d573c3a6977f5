// Writing GGUF version 3 files, streamed.
//
// Use: declare all metadata (add) and all tensors (add_tensor: name, type,
// shape), then give each tensor's data in the declared order (write_tensor, or
// append_tensor_data in pieces), then finish(). Memory stays bounded by the
// metadata and the tensor list: the header is written when the first data
// arrives and the data goes straight to the file.
//
// The file is written under a temporary name in the same directory
// (OUT.tmp-PID) and renamed over OUT by finish() after an fsync, so OUT is
// either the complete new file or untouched. A writer destroyed without
// finish() (an exception, an early return) removes the temporary file.
//
// Layout follows llama.cpp's writer: header, metadata, tensor infos, zero
// padding to the alignment, then each tensor's data padded to the alignment.
// Metadata key "general.alignment" (a u32 power of two) sets the alignment;
// the default is 32 and is not written. Tensor names are limited to 63 bytes,
// llama.cpp's limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/gguf_value.h"

namespace moelite {

class GgufWriter {
public:
    // Nothing is created until the first tensor data (or finish()) arrives.
    explicit GgufWriter(std::string path);
    ~GgufWriter();
    GgufWriter(const GgufWriter&) = delete;
    GgufWriter& operator=(const GgufWriter&) = delete;

    const std::string& path() const { return path_; }

    // ---- declaring (before any data) ----
    // Errors (Error naming the output file): duplicate or empty key, a bad
    // general.alignment, declaring after data has started.
    void add(std::string key, GgufValue value);
    template <class T>
    void add(std::string key, T value) {
        add(std::move(key), GgufValue(std::move(value)));
    }
    // ne[0] is the contiguous dimension (ggml order); 1 to 4 dims, each > 0,
    // ne[0] a multiple of the type's block size. Returns the tensor's data size.
    size_t add_tensor(std::string name, DType type, const std::vector<int64_t>& ne);

    size_t alignment() const { return alignment_; }
    size_t n_tensors() const { return tensors_.size(); }

    // ---- data, in declared order ----
    // The whole data of the next tensor, which must be `name`, of exactly its size.
    void write_tensor(std::string_view name, const void* data, size_t bytes);
    // Part of the data of the current tensor (the first one not yet complete);
    // a tensor is complete when its size is reached; pieces cannot straddle two.
    void append_tensor_data(const void* data, size_t bytes);

    // Checks every tensor is complete, flushes, fsyncs and renames the file
    // into place. The writer is done afterwards.
    // `verify`, when given, reads the complete temporary file (its path)
    // before the rename and throws to refuse it (the file is then removed).
    void finish(const std::function<void(const std::string& temp_path)>& verify = nullptr);

  private:
    struct TensorDecl {
        std::string name;
        DType type;
        std::vector<int64_t> ne;
        uint64_t offset;  // relative to the data section
        size_t nbytes;
    };

    [[noreturn]] void error(const char* fmt, ...) const __attribute__((format(printf, 2, 3)));
    void open_temp();
    void write_header();
    void write_bytes(const void* data, size_t n);  // buffered
    void write_zeros(size_t n);
    void flush();
    void remove_temp() noexcept;

    template <class T>
    void put(T v) {
        write_bytes(&v, sizeof v);
    }
    void put_string(std::string_view s);
    void put_value(const GgufValue& v);

    std::string path_;
    std::string temp_path_;
    int fd_ = -1;
    bool header_written_ = false;
    bool finished_ = false;
    size_t alignment_ = 32;

    std::vector<GgufKV> kv_;
    std::vector<TensorDecl> tensors_;
    uint64_t data_size_ = 0;  // running sum of padded tensor sizes

    size_t current_ = 0;          // index of the tensor being written
    size_t current_written_ = 0;  // its bytes so far
    uint64_t file_pos_ = 0;       // bytes handed to write_bytes so far
    std::vector<uint8_t> buffer_;
};

}  // namespace moelite
