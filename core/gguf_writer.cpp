// GgufWriter: a buffered, streamed writer of GGUF v3 files (see core/gguf_writer.h).
#include "core/gguf_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/gguf.h"
#include "core/mmap.h"

namespace moelite {
namespace {

constexpr size_t kBufferBytes = size_t(1) << 20;
constexpr size_t kMaxTensorName = 63;  // llama.cpp keeps names in 64-byte arrays with a terminator
constexpr uint32_t kVersion = 3;

size_t pad_to(uint64_t n, size_t align) {
    return size_t((align - n % align) % align);
}

}  // namespace

GgufWriter::GgufWriter(std::string path) : path_(std::move(path)) { require_replaceable_file(path_); }

GgufWriter::~GgufWriter() {
    remove_temp();
}

void GgufWriter::error(const char* fmt, ...) const {
    va_list args;
    va_start(args, fmt);
    std::string msg = vstrprintf(fmt, args);
    va_end(args);
    fail("%s: %s", path_.c_str(), msg.c_str());
}

void GgufWriter::remove_temp() noexcept {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    if (!finished_ && !temp_path_.empty()) {
        ::unlink(temp_path_.c_str());
        temp_path_.clear();
    }
}

// ---- declaring ----

void GgufWriter::add(std::string key, GgufValue value) {
    if (header_written_) error("metadata '%s' added after tensor data was written", key.c_str());
    if (key.empty()) error("empty metadata key");
    for (const GgufKV& kv : kv_)
        if (kv.key == key) error("duplicate metadata key '%s'", key.c_str());
    if (value.is_array() && value.element_type() == GgufType::Array)
        error("'%s': nested arrays are not supported", key.c_str());
    if (key == kGgufAlignmentKey) {
        // llama.cpp reads this key as a u32 and nothing else.
        const uint32_t* a = value.get_if<uint32_t>();
        if (!a) error("'%s' must be a u32, not %s", key.c_str(), gguf_type_name(value.type()));
        if (*a == 0 || (*a & (*a - 1)) != 0) error("'%s' = %u is not a power of two", key.c_str(), *a);
        alignment_ = *a;
    }
    kv_.push_back(GgufKV{std::move(key), std::move(value)});
}

size_t GgufWriter::add_tensor(std::string name, DType type, const std::vector<int64_t>& ne) {
    if (header_written_) error("tensor '%s' declared after tensor data was written", name.c_str());
    if (name.empty()) error("empty tensor name");
    if (name.size() > kMaxTensorName)
        error("tensor name '%s' is %zu bytes long (at most %zu)", name.c_str(), name.size(), kMaxTensorName);
    for (const TensorDecl& t : tensors_)
        if (t.name == name) error("duplicate tensor name '%s'", name.c_str());
    if (ne.empty() || ne.size() > size_t(kMaxDims))
        error("tensor '%s' has %zu dimensions (must be 1 to %d)", name.c_str(), ne.size(), kMaxDims);
    int64_t nelements = 1;
    for (size_t d = 0; d < ne.size(); ++d) {
        if (ne[d] <= 0)
            error("tensor '%s': dimension %zu is %lld (must be positive)", name.c_str(), d, (long long)ne[d]);
        if (__builtin_mul_overflow(nelements, ne[d], &nelements)) error("tensor '%s' is too large", name.c_str());
    }
    const int64_t block = dtype_block_size(type);
    if (ne[0] % block != 0)
        error("tensor '%s': ne[0] = %lld is not a multiple of the %s block size %lld", name.c_str(), (long long)ne[0],
              dtype_name(type), (long long)block);
    size_t nbytes;
    if (__builtin_mul_overflow(size_t(nelements / block), dtype_block_bytes(type), &nbytes))
        error("tensor '%s' is too large", name.c_str());
    tensors_.push_back(TensorDecl{std::move(name), type, ne, 0, nbytes});
    return nbytes;
}

// ---- output ----

void GgufWriter::open_temp() {
    MOELITE_ASSERT(fd_ < 0 && temp_path_.empty());
    temp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        const int e = errno;
        temp_path_.clear();
        error("cannot create %s.tmp-%d: %s", path_.c_str(), int(::getpid()), std::strerror(e));
    }
    buffer_.reserve(kBufferBytes);
}

void GgufWriter::flush() {
    size_t done = 0;
    while (done < buffer_.size()) {
        const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            error("write failed: %s", std::strerror(errno));
        }
        done += size_t(n);
    }
    buffer_.clear();
}

void GgufWriter::write_bytes(const void* data, size_t n) {
    MOELITE_ASSERT(fd_ >= 0);
    const auto* p = static_cast<const uint8_t*>(data);
    file_pos_ += n;
    if (buffer_.size() + n <= kBufferBytes) {
        buffer_.insert(buffer_.end(), p, p + n);
        return;
    }
    flush();
    if (n < kBufferBytes) {
        buffer_.insert(buffer_.end(), p, p + n);
        return;
    }
    // Large pieces (tensor data) go straight to the file.
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, std::min(n, size_t(1) << 30));
        if (w < 0) {
            if (errno == EINTR) continue;
            error("write failed: %s", std::strerror(errno));
        }
        p += w;
        n -= size_t(w);
    }
}

void GgufWriter::write_zeros(size_t n) {
    static const uint8_t zeros[256] = {};
    while (n > 0) {
        const size_t k = std::min(n, sizeof zeros);
        write_bytes(zeros, k);
        n -= k;
    }
}

void GgufWriter::put_string(std::string_view s) {
    put<uint64_t>(s.size());
    write_bytes(s.data(), s.size());
}

void GgufWriter::put_value(const GgufValue& v) {
    put<uint32_t>(uint32_t(v.type()));
    v.visit([&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, GgufArray>) {
            put<uint32_t>(uint32_t(v.element_type()));
            put<uint64_t>(v.size());
            std::visit(
                [&](const auto& items) {
                    using V = std::decay_t<decltype(items)>;
                    if constexpr (std::is_same_v<V, std::monostate>) {
                        MOELITE_ASSERT_MSG(false, "array of arrays");
                    } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
                        for (const std::string& s : items) put_string(s);
                    } else if constexpr (std::is_same_v<V, std::vector<bool>>) {
                        for (bool b : items) put<uint8_t>(b ? 1 : 0);
                    } else {
                        write_bytes(items.data(), items.size() * sizeof(typename V::value_type));
                    }
                },
                x.items);
        } else if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
        } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(x ? 1 : 0);
        } else {
            put<T>(x);
        }
    });
}

void GgufWriter::write_header() {
    MOELITE_ASSERT(!header_written_);
    open_temp();
    header_written_ = true;
    uint64_t offset = 0;
    for (TensorDecl& t : tensors_) {
        t.offset = offset;
        const uint64_t padded = t.nbytes + pad_to(t.nbytes, alignment_);
        if (__builtin_add_overflow(offset, padded, &offset)) error("total tensor data is too large");
    }
    data_size_ = offset;

    write_bytes("GGUF", 4);
    put<uint32_t>(kVersion);
    put<uint64_t>(tensors_.size());
    put<uint64_t>(kv_.size());
    for (const GgufKV& kv : kv_) {
        put_string(kv.key);
        put_value(kv.value);
    }
    for (const TensorDecl& t : tensors_) {
        put_string(t.name);
        put<uint32_t>(uint32_t(t.ne.size()));
        for (int64_t n : t.ne) put<int64_t>(n);
        put<uint32_t>(uint32_t(t.type));
        put<uint64_t>(t.offset);
    }
    write_zeros(pad_to(file_pos_, alignment_));
}

void GgufWriter::append_tensor_data(const void* data, size_t bytes) {
    if (finished_) error("tensor data written after finish()");
    if (!header_written_) write_header();
    if (current_ >= tensors_.size()) error("more tensor data than the %zu declared tensors hold", tensors_.size());
    const TensorDecl& t = tensors_[current_];
    if (bytes > t.nbytes - current_written_)
        error("tensor '%s': %zu bytes given, but only %zu of its %zu bytes are left", t.name.c_str(), bytes,
              t.nbytes - current_written_, t.nbytes);
    write_bytes(data, bytes);
    current_written_ += bytes;
    if (current_written_ == t.nbytes) {
        write_zeros(pad_to(t.nbytes, alignment_));
        ++current_;
        current_written_ = 0;
    }
}

void GgufWriter::write_tensor(std::string_view name, const void* data, size_t bytes) {
    if (current_ >= tensors_.size())
        error("tensor '%.*s' written, but all %zu declared tensors are complete", int(name.size()), name.data(),
              tensors_.size());
    const TensorDecl& t = tensors_[current_];
    if (t.name != name)
        error("tensor '%.*s' written out of order: the next declared tensor is '%s'", int(name.size()), name.data(),
              t.name.c_str());
    if (current_written_ != 0) error("tensor '%s' is already partly written", t.name.c_str());
    if (bytes != t.nbytes)
        error("tensor '%s': %zu bytes given, but its type %s and shape need %zu", t.name.c_str(), bytes,
              dtype_name(t.type), t.nbytes);
    append_tensor_data(data, bytes);
}

void GgufWriter::finish(const std::function<void(const std::string& temp_path)>& verify) {
    if (finished_) error("finish() called twice");
    if (!header_written_) write_header();
    if (current_ < tensors_.size()) {
        const TensorDecl& t = tensors_[current_];
        error("tensor '%s' is incomplete: %zu of %zu bytes written (%zu of %zu tensors complete)", t.name.c_str(),
              current_written_, t.nbytes, current_, tensors_.size());
    }
    flush();
    if (::fsync(fd_) != 0) error("fsync failed: %s", std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) error("close failed: %s", std::strerror(errno));
    if (verify) verify(temp_path_);
    require_replaceable_file(path_);  // again: the conversion took a while
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
        error("cannot rename the temporary file: %s", std::strerror(errno));
    finished_ = true;
    // Make the rename itself durable.
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = std::filesystem::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace moelite
