// The reference file of the KL-divergence mode of `moelite perplexity`: the
// tokens a reference model was evaluated on and the log-probabilities it gave
// at every scored position, so another model (a quantization of it) can be
// compared against it position by position later.
//
// Format (all little-endian, no padding):
//   offset  size  field
//        0     8  magic "MLLOGPRB"
//        8     4  u32 version = 1
//       12     4  u32 value type: 0 = f32, 1 = f16 (IEEE 754 half)
//       16     8  u64 n_vocab
//       24     8  u64 n_ctx       tokens per chunk
//       32     8  u64 n_chunks
//       40     8  u64 n_scored    positions scored per chunk = n_ctx - 1 - n_ctx / 2
//       48        i32 tokens[n_chunks * n_ctx]: the tokens evaluated, chunk after
//                 chunk (with the BOS substitution, if any, already made)
//   then for each chunk, n_scored rows of n_vocab values: the log-softmax of
//   the logits at chunk positions n_ctx/2 .. n_ctx-2 (the row of position j
//   predicts token j + 1 of the chunk).
// f16 halves the size (a 152k vocabulary at ctx 512 takes ~77 MB per chunk,
// as llama.cpp's 16-bit format does). It keeps 11 significant bits: a
// log-probability near -5 is stored within about +-0.002, which adds a
// zero-mean noise of order 1e-4 to each position's KL divergence (the mean
// over many positions is hardly moved; the minimum can come out slightly
// negative). Use f32 when comparing models closer than that (Q8_0 against
// F16 on a flat distribution). Values are clamped to [-65504, 0] so f16
// stays finite.
// The file size must be exactly what the header implies.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace moelite {

enum class LogprobType : uint32_t { F32 = 0, F16 = 1 };

struct LogprobHeader {
    LogprobType type = LogprobType::F16;
    int64_t n_vocab = 0;
    int64_t n_ctx = 0;
    int64_t n_chunks = 0;
    int64_t n_scored() const { return n_ctx - 1 - n_ctx / 2; }
};

// Writes a file through a temporary name; commit() renames it into place.
// Destroyed without commit() (an error on the way), it removes the temporary.
class LogprobWriter {
  public:
    LogprobWriter(const std::string& path, const LogprobHeader& header, const std::vector<int32_t>& tokens);
    ~LogprobWriter();
    LogprobWriter(const LogprobWriter&) = delete;
    LogprobWriter& operator=(const LogprobWriter&) = delete;

    // One row of n_vocab log-probabilities; rows come in file order.
    void write_row(const float* logprobs);
    void commit();

  private:
    void write(const void* data, size_t bytes);

    std::string path_, tmp_;
    LogprobHeader header_;
    FILE* file_ = nullptr;
    int64_t rows_written_ = 0;
    std::vector<uint16_t> half_;
};

// Opens and validates a file (magic, version, sizes, tokens in range).
class LogprobReader {
  public:
    explicit LogprobReader(const std::string& path);
    ~LogprobReader();
    LogprobReader(const LogprobReader&) = delete;
    LogprobReader& operator=(const LogprobReader&) = delete;

    const std::string& path() const { return path_; }
    const LogprobHeader& header() const { return header_; }
    const std::vector<int32_t>& tokens() const { return tokens_; }
    // The next row, as floats (n_vocab of them).
    void read_row(float* out);

  private:
    std::string path_;
    LogprobHeader header_;
    std::vector<int32_t> tokens_;
    FILE* file_ = nullptr;
    std::vector<uint16_t> half_;
};

}  // namespace moelite
