// The QuantTraits table: for each type we compute on, its scalar reference
// functions (quant/ref_*.cpp) and the activation type of its dot product.
// Pairings follow ggml so that files and kernels agree: F32 and F16 dot with
// themselves, Q4_0/Q5_0/Q8_0 with Q8_0, Q4_1/Q5_1 with Q8_1 (which carries
// the block sum their min needs), the K-quants with Q8_K. One exception: BF16
// weights dot with F32 activations, where ggml rounds the activations to BF16
// too. BF16 checkpoints (DeepSeek's) carry routers whose choices turn on
// margins of 1e-3, which that rounding flips; widening a BF16 weight costs
// one shift either way, so keeping activations in F32 is free precision.
#include "quant/quant.h"

#include <array>

#include "quant/ref.h"

namespace moelite {
namespace {

constexpr QuantTraits kTraits[] = {
    {DType::F32, ref::to_float_f32, ref::from_float_f32, DType::F32, ref::vec_dot_f32},
    {DType::F16, ref::to_float_f16, ref::from_float_f16, DType::F16, ref::vec_dot_f16},
    {DType::BF16, ref::to_float_bf16, ref::from_float_bf16, DType::F32, ref::vec_dot_bf16},
    {DType::Q4_0, ref::to_float_q4_0, ref::from_float_q4_0, DType::Q8_0, ref::vec_dot_q4_0_q8_0},
    {DType::Q4_1, ref::to_float_q4_1, ref::from_float_q4_1, DType::Q8_1, ref::vec_dot_q4_1_q8_1},
    {DType::Q5_0, ref::to_float_q5_0, ref::from_float_q5_0, DType::Q8_0, ref::vec_dot_q5_0_q8_0},
    {DType::Q5_1, ref::to_float_q5_1, ref::from_float_q5_1, DType::Q8_1, ref::vec_dot_q5_1_q8_1},
    {DType::Q8_0, ref::to_float_q8_0, ref::from_float_q8_0, DType::Q8_0, ref::vec_dot_q8_0_q8_0},
    {DType::Q8_1, ref::to_float_q8_1, ref::from_float_q8_1, DType::Q8_1, ref::vec_dot_q8_1_q8_1},
    {DType::Q2_K, ref::to_float_q2_k, ref::from_float_q2_k, DType::Q8_K, ref::vec_dot_q2_k_q8_k},
    {DType::Q3_K, ref::to_float_q3_k, ref::from_float_q3_k, DType::Q8_K, ref::vec_dot_q3_k_q8_k},
    {DType::Q4_K, ref::to_float_q4_k, ref::from_float_q4_k, DType::Q8_K, ref::vec_dot_q4_k_q8_k},
    {DType::Q5_K, ref::to_float_q5_k, ref::from_float_q5_k, DType::Q8_K, ref::vec_dot_q5_k_q8_k},
    {DType::Q6_K, ref::to_float_q6_k, ref::from_float_q6_k, DType::Q8_K, ref::vec_dot_q6_k_q8_k},
    {DType::Q8_K, ref::to_float_q8_k, ref::from_float_q8_k, DType::Q8_K, ref::vec_dot_q8_k_q8_k},
};

constexpr std::array<int, kDTypeIdLimit> make_index() {
    std::array<int, kDTypeIdLimit> index{};
    for (auto& i : index) i = -1;
    for (size_t i = 0; i < sizeof(kTraits) / sizeof(kTraits[0]); ++i) index[uint32_t(kTraits[i].type)] = int(i);
    return index;
}
constexpr std::array<int, kDTypeIdLimit> kIndex = make_index();

}  // namespace

const QuantTraits* quant_traits(DType type) {
    const uint32_t id = uint32_t(type);
    if (id >= kDTypeIdLimit || kIndex[id] < 0) return nullptr;
    return &kTraits[kIndex[id]];
}

}  // namespace moelite
