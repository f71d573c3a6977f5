#include "core/dtype.h"

#include <array>
#include <cctype>

#include "core/error.h"

namespace moelite {
namespace {

// Sizes follow ggml's block layouts (see quant/blocks.h for the structs of
// the types we compute on; the others are here so files holding them can be
// listed and skipped with a clear message).
constexpr DTypeInfo kTypes[] = {
    {DType::F32, "f32", 1, 4},
    {DType::F16, "f16", 1, 2},
    {DType::Q4_0, "q4_0", 32, 18},
    {DType::Q4_1, "q4_1", 32, 20},
    {DType::Q5_0, "q5_0", 32, 22},
    {DType::Q5_1, "q5_1", 32, 24},
    {DType::Q8_0, "q8_0", 32, 34},
    {DType::Q8_1, "q8_1", 32, 36},
    {DType::Q2_K, "q2_K", 256, 84},
    {DType::Q3_K, "q3_K", 256, 110},
    {DType::Q4_K, "q4_K", 256, 144},
    {DType::Q5_K, "q5_K", 256, 176},
    {DType::Q6_K, "q6_K", 256, 210},
    {DType::Q8_K, "q8_K", 256, 292},
    {DType::IQ2_XXS, "iq2_xxs", 256, 66},
    {DType::IQ2_XS, "iq2_xs", 256, 74},
    {DType::IQ3_XXS, "iq3_xxs", 256, 98},
    {DType::IQ1_S, "iq1_s", 256, 50},
    {DType::IQ4_NL, "iq4_nl", 32, 18},
    {DType::IQ3_S, "iq3_s", 256, 110},
    {DType::IQ2_S, "iq2_s", 256, 82},
    {DType::IQ4_XS, "iq4_xs", 256, 136},
    {DType::I8, "i8", 1, 1},
    {DType::I16, "i16", 1, 2},
    {DType::I32, "i32", 1, 4},
    {DType::I64, "i64", 1, 8},
    {DType::F64, "f64", 1, 8},
    {DType::IQ1_M, "iq1_m", 256, 56},
    {DType::BF16, "bf16", 1, 2},
    {DType::TQ1_0, "tq1_0", 256, 54},
    {DType::TQ2_0, "tq2_0", 256, 66},
    {DType::MXFP4, "mxfp4", 32, 17},
};

constexpr std::array<int, kDTypeIdLimit> make_index() {
    std::array<int, kDTypeIdLimit> index{};
    for (auto& i : index) i = -1;
    for (size_t i = 0; i < sizeof(kTypes) / sizeof(kTypes[0]); ++i) index[uint32_t(kTypes[i].type)] = int(i);
    return index;
}
constexpr std::array<int, kDTypeIdLimit> kIndex = make_index();

}  // namespace

std::optional<DType> dtype_from_id(uint32_t id) {
    if (id >= kDTypeIdLimit || kIndex[id] < 0) return std::nullopt;
    return DType(id);
}

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const auto& t : kTypes) {
        std::string_view n = t.name;
        if (n.size() != name.size()) continue;
        bool same = true;
        for (size_t i = 0; i < n.size() && same; ++i)
            same = std::tolower((unsigned char)n[i]) == std::tolower((unsigned char)name[i]);
        if (same) return t.type;
    }
    return std::nullopt;
}

const DTypeInfo& dtype_info(DType type) {
    const uint32_t id = uint32_t(type);
    MOELITE_ASSERT(id < kDTypeIdLimit && kIndex[id] >= 0);
    return kTypes[kIndex[id]];
}

size_t dtype_row_bytes(DType type, int64_t n) {
    const DTypeInfo& info = dtype_info(type);
    MOELITE_ASSERT(n >= 0 && n % info.block_size == 0);
    return size_t(n / info.block_size) * info.block_bytes;
}

}  // namespace moelite
