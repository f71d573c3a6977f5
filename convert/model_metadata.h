// The GGUF metadata of a converted model: general.* and the {arch}.* keys,
// with the names, value types and order llama.cpp's converter writes
// (convert_hf_to_gguf.py: TextModel.set_gguf_parameters plus each family's
// additions), so that llama.cpp loads our files and the two agree key by key.
//
// Value types: counts and lengths are u32, floats f32, flags bool, the
// rope scaling type a string ("yarn", "linear"). Llama-3 rope scaling is not
// a key but the rope_freqs tensor (see convert/tensor_map.h).
#pragma once

#include <string>
#include <vector>

#include "convert/hf_config.h"
#include "convert/quant_recipe.h"
#include "core/gguf_value.h"

namespace moelite {

// general.* (architecture, type, name, file_type, quantization_version) and
// the architecture's hyper-parameter keys. `vocab_less` (no tokenizer) also
// writes {arch}.vocab_size where llama.cpp would not (qwen2), since a
// vocab-less file has no token list to size the vocabulary.
std::vector<GgufKV> model_metadata(const HfConfig& config, const std::string& model_name, FileType file_type,
                                   bool vocab_less);

// The 1 / (scaling) factors of Llama 3 rope scaling, one per rotated pair
// (n_rot / 2 of them): llama.cpp divides each frequency by its factor.
std::vector<float> llama3_rope_factors(const HfConfig& config);

}  // namespace moelite
