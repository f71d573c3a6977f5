// The KL-divergence reference file; the format is described in logprob_file.h.
#include "models/logprob_file.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "core/error.h"
#include "core/fp16.h"

namespace moelite {
namespace {

constexpr char kMagic[8] = {'M', 'L', 'L', 'O', 'G', 'P', 'R', 'B'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 48;
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxCtx = int64_t(1) << 24;

// The host is little-endian (x86-64, arm64): fields are copied as they are.
void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint64_t get_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

size_t value_bytes(LogprobType t) { return t == LogprobType::F16 ? 2 : 4; }

}  // namespace

// ---- writer -----------------------------------------------------------------

LogprobWriter::LogprobWriter(const std::string& path, const LogprobHeader& header, const std::vector<int32_t>& tokens)
    : path_(path), tmp_(path + ".tmp-" + std::to_string(::getpid())), header_(header) {
    MOELITE_ASSERT(header.n_vocab > 0 && header.n_ctx >= 4 && header.n_chunks > 0);
    MOELITE_ASSERT(int64_t(tokens.size()) == header.n_chunks * header.n_ctx);
    file_ = std::fopen(tmp_.c_str(), "wb");
    if (!file_) fail("%s: cannot create: %s", tmp_.c_str(), std::strerror(errno));
    uint8_t h[kHeaderBytes] = {};
    std::memcpy(h, kMagic, 8);
    put_u32(h + 8, kVersion);
    put_u32(h + 12, uint32_t(header.type));
    put_u64(h + 16, uint64_t(header.n_vocab));
    put_u64(h + 24, uint64_t(header.n_ctx));
    put_u64(h + 32, uint64_t(header.n_chunks));
    put_u64(h + 40, uint64_t(header.n_scored()));
    write(h, sizeof(h));
    write(tokens.data(), tokens.size() * sizeof(int32_t));
    if (header.type == LogprobType::F16) half_.resize(size_t(header.n_vocab));
}

LogprobWriter::~LogprobWriter() {
    if (file_) {
        std::fclose(file_);
        std::remove(tmp_.c_str());
    }
}

void LogprobWriter::write(const void* data, size_t bytes) {
    if (std::fwrite(data, 1, bytes, file_) != bytes) fail("%s: cannot write: %s", tmp_.c_str(), std::strerror(errno));
}

void LogprobWriter::write_row(const float* logprobs) {
    MOELITE_ASSERT(file_ && rows_written_ < header_.n_chunks * header_.n_scored());
    const size_t n = size_t(header_.n_vocab);
    if (header_.type == LogprobType::F16) {
        for (size_t i = 0; i < n; ++i) half_[i] = fp32_to_fp16(std::clamp(logprobs[i], -65504.0f, 0.0f));
        write(half_.data(), n * 2);
    } else {
        write(logprobs, n * 4);
    }
    ++rows_written_;
}

void LogprobWriter::commit() {
    MOELITE_ASSERT(file_ && rows_written_ == header_.n_chunks * header_.n_scored());
    FILE* f = file_;
    file_ = nullptr;
    const bool closed = std::fclose(f) == 0;
    if (!closed || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
        const int e = errno;
        std::remove(tmp_.c_str());
        fail("%s: cannot write: %s", path_.c_str(), std::strerror(e));
    }
}

// ---- reader -----------------------------------------------------------------

LogprobReader::LogprobReader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) fail("%s: cannot open: %s", path.c_str(), std::strerror(errno));
    // From here on a failure must close the file: the destructor does not run
    // for an object whose constructor throws.
    try {
        if (std::fseek(file_, 0, SEEK_END) != 0) fail("%s: cannot seek", path.c_str());
        const long end = std::ftell(file_);
        if (end < 0) fail("%s: cannot tell its size", path.c_str());
        const uint64_t file_size = uint64_t(end);
        std::rewind(file_);
        uint8_t h[kHeaderBytes];
        if (file_size < kHeaderBytes || std::fread(h, 1, kHeaderBytes, file_) != kHeaderBytes)
            fail("%s: too short for a log-probability file (%llu bytes)", path.c_str(), (unsigned long long)file_size);
        if (std::memcmp(h, kMagic, 8) != 0)
            fail("%s: not a moelite log-probability file (written by `moelite perplexity --kl-divergence-base`)",
                 path.c_str());
        if (get_u32(h + 8) != kVersion) fail("%s: unsupported version %u", path.c_str(), get_u32(h + 8));
        const uint32_t type = get_u32(h + 12);
        if (type > 1) fail("%s: unknown value type %u", path.c_str(), type);
        header_.type = LogprobType(type);
        const uint64_t n_vocab = get_u64(h + 16), n_ctx = get_u64(h + 24), n_chunks = get_u64(h + 32);
        const uint64_t n_scored = get_u64(h + 40);
        if (n_vocab == 0 || n_vocab > uint64_t(kMaxVocab))
            fail("%s: vocabulary size %llu is out of range", path.c_str(), (unsigned long long)n_vocab);
        if (n_ctx < 4 || n_ctx > uint64_t(kMaxCtx))
            fail("%s: context length %llu is out of range", path.c_str(), (unsigned long long)n_ctx);
        header_.n_vocab = int64_t(n_vocab);
        header_.n_ctx = int64_t(n_ctx);
        if (n_scored != uint64_t(header_.n_scored()))
            fail("%s: %llu scored positions per chunk, expected %lld for a context of %llu", path.c_str(),
                 (unsigned long long)n_scored, (long long)header_.n_scored(), (unsigned long long)n_ctx);
        // Bound the chunk count by the file size before multiplying anything.
        const uint64_t chunk_bytes = n_ctx * 4 + n_scored * n_vocab * value_bytes(header_.type);
        if (n_chunks == 0 || n_chunks > file_size / chunk_bytes)
            fail("%s: %llu chunks do not fit in its %llu bytes", path.c_str(), (unsigned long long)n_chunks,
                 (unsigned long long)file_size);
        header_.n_chunks = int64_t(n_chunks);
        const uint64_t want = kHeaderBytes + n_chunks * chunk_bytes;
        if (file_size != want)
            fail("%s: size is %llu bytes, its header implies %llu (truncated or not this format)", path.c_str(),
                 (unsigned long long)file_size, (unsigned long long)want);
        tokens_.resize(size_t(n_chunks * n_ctx));
        if (std::fread(tokens_.data(), 4, tokens_.size(), file_) != tokens_.size())
            fail("%s: cannot read its tokens", path.c_str());
        for (size_t i = 0; i < tokens_.size(); ++i)
            if (tokens_[i] < 0 || int64_t(tokens_[i]) >= header_.n_vocab)
                fail("%s: token %zu (%d) is outside its vocabulary of %lld", path.c_str(), i, tokens_[i],
                     (long long)header_.n_vocab);
        if (header_.type == LogprobType::F16) half_.resize(size_t(n_vocab));
    } catch (...) {
        std::fclose(file_);
        file_ = nullptr;
        throw;
    }
}

LogprobReader::~LogprobReader() {
    if (file_) std::fclose(file_);
}

void LogprobReader::read_row(float* out) {
    const size_t n = size_t(header_.n_vocab);
    if (header_.type == LogprobType::F16) {
        if (std::fread(half_.data(), 2, n, file_) != n) fail("%s: cannot read a row of log-probabilities", path_.c_str());
        for (size_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(half_[i]);
    } else {
        if (std::fread(out, 4, n, file_) != n) fail("%s: cannot read a row of log-probabilities", path_.c_str());
    }
}

}  // namespace moelite
