// Reading safetensors files and Hugging Face checkpoint directories.
//
// The format: an 8-byte little-endian u64 header length N, N bytes of JSON,
// then the data section. The JSON object maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]}, with offsets relative to
// the first byte after the header, plus an optional "__metadata__" object of
// string values.
//
// Conventions:
//  - files come from the internet: everything in the header is checked once,
//    when the file is opened (types, shapes, sizes, ranges, overlaps,
//    duplicate names), and each problem is a moelite::Error naming the file,
//    the tensor when there is one, and what is wrong. After that, every
//    SafetensorsTensor's byte range is known to lie inside the file;
//  - shapes are as the file gives them, outermost first (row-major, the
//    PyTorch order); a 0-D tensor has an empty shape and one element. GGUF's
//    ne[] is this shape reversed;
//  - tensor data may be unaligned: readers copy bytes, never cast pointers;
//  - files are mapped read-only, nothing is copied on open; a file's tensors
//    point into its mapping, so a SafetensorsFile neither copies nor moves.
//  - holes between tensors are accepted (they are harmless); overlaps are not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace moelite {

class MappedFile;
class SafetensorsFile;

// Every dtype name the format defines with a whole number of bytes per
// element. Only the float ones in safetensors_dtype_is_float() convert to f32;
// the others can be listed and read as raw bytes.
enum class SafetensorsDType : uint8_t {
    BOOL,
    U8,
    I8,
    F8_E4M3,
    F8_E5M2,
    F8_E8M0,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    I64,
    U64,
    F64,
};

// nullopt for a name the format does not define (names are upper case, exact).
std::optional<SafetensorsDType> safetensors_dtype_from_name(std::string_view name);
const char* safetensors_dtype_name(SafetensorsDType type);
size_t safetensors_dtype_size(SafetensorsDType type);
// True for the types read_f32 converts: F32, F16, BF16, F8_E4M3, F8_E5M2, F64.
bool safetensors_dtype_is_float(SafetensorsDType type);
// The GGUF type with the same element layout (F32, F16, BF16, I8, I16, I32,
// I64, F64); nullopt when GGUF has none (FP8, unsigned, bool).
std::optional<DType> safetensors_dtype_to_dtype(SafetensorsDType type);

struct SafetensorsTensor {
    const SafetensorsFile* file = nullptr;  // the file it lives in
    std::string name;
    SafetensorsDType dtype = SafetensorsDType::F32;
    std::vector<int64_t> shape;  // outermost first; empty for a scalar
    int64_t n_elements = 1;      // product of shape (1 for a scalar, 0 if a dim is 0)
    uint64_t begin = 0;          // byte range [begin, end) relative to the data section
    uint64_t end = 0;
    const uint8_t* data = nullptr;  // first byte, inside the file's mapping; may be unaligned

    size_t nbytes() const { return size_t(end - begin); }
    std::span<const uint8_t> bytes() const { return {data, nbytes()}; }
    // "[2048, 7168]"
    std::string shape_string() const;

    // Converts elements [first, first + count) (in row-major order) to f32.
    // Throws Error naming the file and tensor when the dtype is not a float
    // type; the range must lie inside the tensor (asserted: callers derive it
    // from the validated shape).
    void read_f32(int64_t first, int64_t count, float* out) const;
    std::vector<float> read_f32() const;
};

class SafetensorsFile {
public:
    // Maps `path` read-only and validates it.
    explicit SafetensorsFile(const std::string& path);
    // Validates `size` bytes at `data`, which the caller keeps alive as long as
    // this object; `name` stands for the file in error messages.
    SafetensorsFile(std::string name, const uint8_t* data, size_t size);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    size_t size() const { return size_; }
    const uint8_t* data() const { return data_; }
    // The mapping, for read-ahead hints; null when made from memory.
    const MappedFile* mapping() const { return map_.get(); }
    // Byte offset of the data section in the file (8 + header length).
    size_t data_offset() const { return data_offset_; }

    // In file order (by begin offset, then name).
    const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
    const SafetensorsTensor* find(std::string_view name) const;
    // Throws Error naming the file and the tensor when absent.
    const SafetensorsTensor& get(std::string_view name) const;
    // "__metadata__", empty when absent.
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    void parse();

    std::unique_ptr<MappedFile> map_;
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    size_t data_offset_ = 0;
    std::vector<SafetensorsTensor> tensors_;
    std::vector<uint32_t> by_name_;  // indices into tensors_, sorted by name
    std::map<std::string, std::string> metadata_;
};

// A Hugging Face checkpoint: a directory with model.safetensors.index.json
// (its "weight_map" says which shard holds each tensor), or a single
// model.safetensors, or else every *.safetensors in it; a path to one
// .safetensors file, or to the index itself, also works. Every shard is
// mapped and validated on open, and the index must agree exactly with the
// shards: a listed shard that is missing, a listed tensor not in its shard,
// and a shard tensor the index does not list (or lists in another shard) are
// each an Error naming the file.
class SafetensorsCheckpoint {
public:
    explicit SafetensorsCheckpoint(const std::string& path);
    ~SafetensorsCheckpoint();
    SafetensorsCheckpoint(const SafetensorsCheckpoint&) = delete;
    SafetensorsCheckpoint& operator=(const SafetensorsCheckpoint&) = delete;

    const std::string& path() const { return path_; }
    bool has_index() const { return has_index_; }
    size_t shard_count() const { return shards_.size(); }
    // Shards in file-name order.
    const SafetensorsFile& shard(size_t i) const { return *shards_.at(i); }

    // Every tensor, in a stable order: shards by file name, then file order
    // within a shard (the order that reads each file front to back).
    const std::vector<const SafetensorsTensor*>& tensors() const { return tensors_; }
    std::vector<std::string> names() const;
    size_t size() const { return tensors_.size(); }
    const SafetensorsTensor* find(std::string_view name) const;
    // Throws Error naming the checkpoint and the tensor when absent.
    const SafetensorsTensor& get(std::string_view name) const;

private:
    void open_index(const std::string& index_path);
    void open_files(const std::vector<std::string>& files);
    void build_lookup();

    std::string path_;
    bool has_index_ = false;
    std::vector<std::unique_ptr<SafetensorsFile>> shards_;
    std::vector<const SafetensorsTensor*> tensors_;
    std::map<std::string, const SafetensorsTensor*, std::less<>> by_name_;
};

// FP8 block scaling, as DeepSeek-V3 ships its weights: an F8_E4M3 matrix
// [rows, cols] and a sibling "<name>_scale_inv" float matrix of one scale per
// block_rows x block_cols block, shape [ceil(rows / block_rows),
// ceil(cols / block_cols)]; edge blocks may be partial and use their own
// entry. Dequantized: w[r][c] = fp8(w[r][c]) * scale_inv[r / block_rows][c / block_cols],
// one f32 multiply, as the reference does it.

// Throws Error naming the file and tensors unless `weight` is a 2-D F8_E4M3
// tensor, `scale_inv` a 2-D float tensor of exactly the shape above, and the
// block sizes positive.
void fp8_check_block_scales(const SafetensorsTensor& weight, const SafetensorsTensor& scale_inv, int64_t block_rows,
                            int64_t block_cols);

// Dequantizes rows [row_begin, row_end) of `weight` into out, which holds
// (row_end - row_begin) * cols floats. Checks the pair as above; the row range
// must lie inside the weight (asserted).
void fp8_dequantize_rows(const SafetensorsTensor& weight, const SafetensorsTensor& scale_inv, int64_t row_begin,
                         int64_t row_end, float* out, int64_t block_rows = 128, int64_t block_cols = 128);

}  // namespace moelite
