// Reading GGUF files (versions 2 and 3), validated, over a memory map.
//
// Layout of a GGUF file (little-endian; moelite does not read big-endian files):
//   "GGUF", u32 version, u64 n_tensors, u64 n_kv,
//   n_kv x (string key, u32 value type, value),
//   n_tensors x (string name, u32 n_dims, i64 ne[n_dims], u32 dtype id, u64 offset),
//   padding to `general.alignment` (default 32), then the data section; each
//   tensor's offset is relative to the start of the data section and aligned.
// A string is a u64 byte count and the bytes (no terminator); an array value is
// a u32 element type, a u64 count and the elements. Version 1 (32-bit counts)
// is long obsolete and rejected; version 2 has version 3's layout.
//
// Everything in the file is checked before anything is returned: lengths and
// counts against the bytes left, dims (1..4 of them, each > 0, their product and
// byte size without overflow, ne[0] a multiple of the type's block size), types,
// alignment, offsets (aligned, inside the file, tensors not overlapping) and
// duplicates (keys, tensor names). Each failure is a moelite::Error naming the
// file and the problem; the parser never reads outside the buffer.
//
// Shapes follow ggml: ne[0] is the contiguous dimension, so a weight of
// out_features x in_features has ne = {in_features, out_features}.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/gguf_value.h"
#include "core/tensor.h"

namespace moelite {

class MappedFile;

inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr const char* kGgufAlignmentKey = "general.alignment";

struct GgufTensorInfo {
    std::string name;
    DType type = DType::F32;
    int n_dims = 1;                       // as stored in the file (1..4)
    int64_t ne[kMaxDims] = {1, 1, 1, 1};  // dims past n_dims are 1
    uint64_t offset = 0;                  // relative to the data section
    size_t nbytes = 0;                    // bytes of data (contiguous layout)
    const uint8_t* data = nullptr;        // into the mapping (read-only memory)

    int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    // "[4096, 32000]" (the stored dims).
    std::string shape_string() const;
};

// Fills `t` as a contiguous view of the tensor's data in the file: type, ne,
// nb, data, name, and the weight flag. The memory is read-only.
void gguf_tensor_view(const GgufTensorInfo& info, Tensor& t);

namespace detail {
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using NameIndex = std::unordered_map<std::string, size_t, StringHash, std::equal_to<>>;
}  // namespace detail

class GgufFile {
public:
    // Maps and validates a file; the mapping lives as long as the GgufFile.
    static std::unique_ptr<GgufFile> open(const std::string& path);
    // Validates a GGUF image in memory, which must outlive the GgufFile;
    // `name` stands for the file in error messages.
    static std::unique_ptr<GgufFile> from_memory(const void* data, size_t size, std::string name);

    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::string& path() const { return name_; }
    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    size_t data_offset() const { return data_offset_; }  // from the start of the file
    size_t file_size() const { return size_; }
    const uint8_t* file_data() const { return base_; }
    // The mapping, when opened from a path (nullptr from memory).
    const MappedFile* mapping() const { return mapped_.get(); }

    // ---- metadata ----
    const std::vector<GgufKV>& metadata() const { return kv_; }
    const GgufValue* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    // Typed getters: throw Error naming the file and the key when the key is
    // missing or its value has the wrong type or does not fit. Integer getters
    // accept any integer type whose value fits; get_f32/get_f64 accept any
    // number (integers included).
    const std::string& get_string(std::string_view key) const;
    uint32_t get_u32(std::string_view key) const;
    uint64_t get_u64(std::string_view key) const;
    int64_t get_i64(std::string_view key) const;
    float get_f32(std::string_view key) const;
    double get_f64(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    // An array of elements of exactly type T.
    template <class T>
    const std::vector<T>& get_array(std::string_view key) const {
        const GgufValue& v = require(key);
        const std::vector<T>* items = v.array_if<T>();
        if (!items) wrong_type(key, v, strprintf("array of %s", gguf_type_name(gguf_type_of<T>())));
        return *items;
    }
    // An array of any integer type, converted (each element must fit int64).
    std::vector<int64_t> get_int_array(std::string_view key) const;

    // The same, returning nullopt / nullptr when the key is absent (a present
    // key of the wrong type is still an error).
    std::optional<std::string> opt_string(std::string_view key) const;
    std::optional<uint32_t> opt_u32(std::string_view key) const;
    std::optional<uint64_t> opt_u64(std::string_view key) const;
    std::optional<int64_t> opt_i64(std::string_view key) const;
    std::optional<float> opt_f32(std::string_view key) const;
    std::optional<double> opt_f64(std::string_view key) const;
    std::optional<bool> opt_bool(std::string_view key) const;
    template <class T>
    const std::vector<T>* opt_array(std::string_view key) const {
        return has(key) ? &get_array<T>(key) : nullptr;
    }

    // ---- tensors ----
    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(std::string_view name) const;
    // Throws Error naming the file and the tensor when absent.
    const GgufTensorInfo& get_tensor(std::string_view name) const;

private:
    GgufFile() = default;
    void parse();
    const GgufValue& require(std::string_view key) const;
    [[noreturn]] void wrong_type(std::string_view key, const GgufValue& v, const std::string& wanted) const;

    std::string name_;
    std::unique_ptr<MappedFile> mapped_;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    uint32_t version_ = 0;
    size_t alignment_ = kGgufDefaultAlignment;
    size_t data_offset_ = 0;
    std::vector<GgufKV> kv_;
    detail::NameIndex kv_index_;
    std::vector<GgufTensorInfo> tensors_;
    detail::NameIndex tensor_index_;

    friend class GgufParser;
};

}  // namespace moelite
