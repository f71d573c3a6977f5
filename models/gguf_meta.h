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

#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "models/arch.h"
#include "models/sampler.h"
#include "models/tokenizer.h"

namespace moelite {

// What the keys need beyond HParams.
struct ModelMetadataExtras {
    std::string name;         // general.name (omitted when empty)
    uint32_t file_type = 0;   // general.file_type (llama.cpp's LLAMA_FTYPE value)
    bool vocab_less = false;  // no tokenizer: also write {arch}.vocab_size where llama.cpp would not (qwen2)
};

// general.* (architecture, type, name, file_type, quantization_version) and
// the architecture's hyper-parameter keys. Tokenizer keys are the caller's.
std::vector<GgufKV> model_metadata(const HParams& hp, const ModelMetadataExtras& extras);

// tokenizer.ggml.* and tokenizer.chat_template, as llama.cpp's converter writes them.
void write_tokenizer_metadata(GgufWriter& w, const TokenizerMetadata& t);

// The recommended sampling settings a file may carry (llama.cpp's names;
// convert/generation_config.h writes them from generation_config.json).
// Integer keys are i32, the others f32; sequence is a string.
namespace sampling_key {
inline constexpr const char* kSequence = "general.sampling.sequence";
inline constexpr const char* kTopK = "general.sampling.top_k";
inline constexpr const char* kTopP = "general.sampling.top_p";
inline constexpr const char* kMinP = "general.sampling.min_p";
inline constexpr const char* kXtcProbability = "general.sampling.xtc_probability";
inline constexpr const char* kXtcThreshold = "general.sampling.xtc_threshold";
inline constexpr const char* kTemp = "general.sampling.temp";
inline constexpr const char* kPenaltyLastN = "general.sampling.penalty_last_n";
inline constexpr const char* kPenaltyRepeat = "general.sampling.penalty_repeat";
inline constexpr const char* kMirostat = "general.sampling.mirostat";
inline constexpr const char* kMirostatTau = "general.sampling.mirostat_tau";
inline constexpr const char* kMirostatEta = "general.sampling.mirostat_eta";
}  // namespace sampling_key

// Overlays the file's general.sampling.* settings that our sampler has
// (temp, top_k, top_p, min_p, penalty_repeat, penalty_last_n) on `p`, and
// returns the keys applied. A key of a non-numeric type or out of range is
// skipped with a warning (the file still loads); any numeric GGUF type is
// accepted. penalty_last_n = -1 (llama.cpp: the whole context) becomes
// `n_ctx`. The others (mirostat, xtc, sequence) have no counterpart here
// and are ignored.
std::vector<std::string> apply_sampling_metadata(const GgufFile& file, int64_t n_ctx, SamplerParams* p);

}  // namespace moelite
