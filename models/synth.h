// Synthetic models: GGUF files with the exact tensor shapes and metadata of a
// real architecture and random weights. Benchmarks, demos and tests need them
// because real weights cannot be downloaded here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "models/arch.h"
#include "models/tokenizer.h"

namespace moelite {

// The stored type of a tensor, from its GGUF name and shape (ne order). The
// command line passes the converter's quantization recipe here
// (convert/quant_recipe.h: the q4_k_m / q5_k_m mixes, and llama.cpp's
// fallback types for rows a K-quant block does not fit), so that a synthetic
// file is typed tensor for tensor as a converted one; models/ does not depend
// on convert/.
using SynthTypeFn = std::function<DType(const std::string& name, const std::vector<int64_t>& ne)>;

struct SynthOptions {
    // Without tensor_type: every 2-D weight but the MoE router is `type`, the
    // rest F32; a row that does not fit `type`'s blocks is an Error.
    DType type = DType::Q4_K;
    SynthTypeFn tensor_type;            // when set, the type of every tensor
    std::optional<uint32_t> file_type;  // general.file_type (default: llama.cpp's id for a file of `type`)
    uint64_t seed = 1;
    std::string name = "synthetic";
    bool mla_unsplit_kv_b = false;  // deepseek2: one attn_kv_b (older files) instead of attn_k_b + attn_v_b
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
//
// Small tensors are quantized row by row from their own random floats. A
// quantized tensor of more than synth_pool_blocks blocks (a real model's
// big weights: quantizing 15.7 billion floats with the reference K-quant
// quantizer would take hours) is instead assembled from whole blocks drawn at
// random from a pool of synth_pool_blocks blocks, which the reference
// quantizer made from random floats of the same distribution: every block is
// valid and has the statistics of a quantized N(0, 1/fan_in) block, and
// writing costs little more than the disk.
void synth_write_model(const std::string& path, const HParams& hp, const SynthOptions& options);
inline constexpr int64_t synth_pool_blocks = 4096;

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
