// Hugging Face config.json -> moelite hyper-parameters.
//
// Reads the config of the architectures we convert (Qwen2ForCausalLM,
// LlamaForCausalLM, DeepseekV2ForCausalLM, DeepseekV3ForCausalLM) into
// HParams (models/arch.h) plus the few facts a converter needs beyond them
// (FP8 block size, Llama-3 rope factors, YaRN mscale, token ids). The GGUF
// metadata written from it follows llama.cpp's converter.
#pragma once

#include <optional>
#include <string>

#include "models/arch.h"

namespace moelite {

struct Llama3RopeFactors {
    float factor = 8.0f;
    float low_freq_factor = 1.0f;
    float high_freq_factor = 4.0f;
    int64_t original_context = 8192;
};

struct HfConfig {
    std::string path;          // config.json, for messages
    std::string architecture;  // the architectures[0] string
    HParams hp;
    int64_t n_layer_all = 0;   // num_hidden_layers + multi-token-prediction layers
    std::optional<Llama3RopeFactors> llama3_rope;
    float yarn_mscale = 0.0f;          // rope_scaling.mscale (deepseek)
    float yarn_mscale_all_dim = 0.0f;  // rope_scaling.mscale_all_dim (deepseek)
    int64_t fp8_block_rows = 0;  // quantization_config.weight_block_size, 0 when not FP8
    int64_t fp8_block_cols = 0;
    std::optional<int64_t> bos_token_id;
    std::optional<int64_t> eos_token_id;
    std::string torch_dtype;
};

// Parses `path` (a config.json); every problem is an Error naming the file
// and the key.
HfConfig hf_config_load(const std::string& path);
// Same, from JSON text (tests); `name` is used in messages.
HfConfig hf_config_parse(const std::string& text, const std::string& name);

}  // namespace moelite
