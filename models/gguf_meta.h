// Model hyper-parameters -> GGUF metadata, with the names, value types and
// order llama.cpp's converter writes (convert_hf_to_gguf.py:
// TextModel.set_gguf_parameters plus each family's additions), so llama.cpp
// loads our files and the two agree key by key. The converter and the
// synthetic-model writer both use it.
//
// Value types: counts and lengths are u32, floats f32, flags bool, the rope
// scaling type a string ("yarn", "linear"). Llama-3 rope scaling is not a key
// but the rope_freqs tensor (see convert/tensor_map.h).
#pragma once

#include <string>
#include <vector>

#include "core/gguf_writer.h"
#include "models/arch.h"
#include "models/tokenizer.h"

namespace moelite {

// What the keys need beyond HParams.
struct ModelMetadataExtras {
    std::string name;           // general.name (omitted when empty)
    uint32_t file_type = 0;     // general.file_type (llama.cpp's LLAMA_FTYPE value)
    bool vocab_less = false;    // no tokenizer: also write {arch}.vocab_size where llama.cpp would not (qwen2)
    float yarn_beta_fast = 32.0f;
    float yarn_beta_slow = 1.0f;
};

// general.* (architecture, type, name, file_type, quantization_version) and
// the architecture's hyper-parameter keys. Tokenizer keys are the caller's.
std::vector<GgufKV> model_metadata(const HParams& hp, const ModelMetadataExtras& extras);

// tokenizer.ggml.* and tokenizer.chat_template, as llama.cpp's converter writes them.
void write_tokenizer_metadata(GgufWriter& w, const TokenizerMetadata& t);

}  // namespace moelite
