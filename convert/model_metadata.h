// What the converter computes for the model beyond its tensors: Llama-3's
// rope frequency factors (the rope_freqs tensor). The GGUF keys themselves
// come from models/gguf_meta.h, shared with the synthetic-model writer.
#pragma once

#include <vector>

#include "convert/hf_config.h"

namespace moelite {

// The 1 / (scaling) factors of Llama 3 rope scaling, one per rotated pair
// (n_rot / 2 of them): llama.cpp divides each frequency by its factor.
std::vector<float> llama3_rope_factors(const HfConfig& config);

}  // namespace moelite
