// Synthetic models: GGUF files with the exact tensor shapes and metadata of a
// real architecture and random weights. Benchmarks, demos and tests need them
// because real weights cannot be downloaded here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "models/arch.h"
#include "models/tokenizer.h"

namespace moelite {

struct SynthOptions {
    DType type = DType::Q4_K;            // 2-D weights; a row that does not fit the block falls back to F16
    std::optional<DType> embed_type;     // token_embd (default: type)
    std::optional<DType> output_type;    // output.weight (default: type)
    uint64_t seed = 1;
    std::string name = "synthetic";
    bool mla_unsplit_kv_b = false;       // deepseek2: one attn_kv_b (older files) instead of attn_k_b + attn_v_b
    std::optional<TokenizerMetadata> tokenizer;  // embedded when set (n_vocab must cover it)
};

// Options with only the weight type set.
inline SynthOptions synth_type(DType type) {
    SynthOptions o;
    o.type = type;
    return o;
}

// Writes a random-weight model of shape `hp` to `path` (temp file + rename).
// Weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), norms ~ 1 + N(0, 0.01).
void synth_write_model(const std::string& path, const HParams& hp, const SynthOptions& options);

}  // namespace moelite

namespace moelite {

// Shapes of real models, by name: "r1-qwen-1.5b", "r1-qwen-7b", "r1-llama-8b",
// "deepseek-v2-lite", "deepseek-v3". nullopt for an unknown name.
std::optional<HParams> synth_preset(const std::string& name);
// The preset names, for --help.
std::string synth_preset_names();

// A small byte-level tokenizer for demo models: the 256 byte tokens, no
// merges, and the DeepSeek-R1 special tokens, with an R1-style chat template
// (system prompt, <｜User｜>/<｜Assistant｜> turns, thinking dropped from the
// history, generation prompt pre-filled with "<think>\n").
TokenizerMetadata synth_demo_tokenizer();

}  // namespace moelite
