// Element types, with the numeric ids GGUF files use (ggml's type enum), and
// the one table of their sizes. core/ knows a type's name, how many elements
// a block holds and how many bytes it takes, enough to size and view tensors;
// everything that computes on blocks lives in quant/ (QuantTraits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace moelite {

// Values are fixed by the GGUF format; gaps are ids ggml has retired.
enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
};

inline constexpr uint32_t kDTypeIdLimit = 40;  // every valid id is below this

struct DTypeInfo {
    DType type;
    const char* name;    // lower-case, as llama.cpp prints it ("q4_K", "f16")
    int64_t block_size;  // elements per block (1 for plain types)
    size_t block_bytes;  // bytes per block
};

// nullopt for ids that are not (or no longer) types.
std::optional<DType> dtype_from_id(uint32_t id);
// Case-insensitive lookup by name ("q4_k", "Q4_K", "bf16").
std::optional<DType> dtype_from_name(std::string_view name);

const DTypeInfo& dtype_info(DType type);
inline const char* dtype_name(DType type) { return dtype_info(type).name; }
inline int64_t dtype_block_size(DType type) { return dtype_info(type).block_size; }
inline size_t dtype_block_bytes(DType type) { return dtype_info(type).block_bytes; }
inline bool dtype_is_quantized(DType type) { return dtype_info(type).block_size > 1; }

// Bytes of a row of n elements; n must be a multiple of the block size
// (checked: an invariant for our own tensors, validated before for files).
size_t dtype_row_bytes(DType type, int64_t n);

}  // namespace moelite
