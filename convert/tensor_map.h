// Which Hugging Face tensors make which GGUF tensor, and how.
//
// The GGUF side comes from the architecture's tensor declaration
// (models/arch.h); this file adds the Hugging Face names and the transforms
// llama.cpp's converter applies, so that our files match its files:
//  - llama: q/k rows permuted per head from HF's rotate-half RoPE layout to
//    the adjacent-pair layout llama.cpp's `llama` graph expects;
//  - deepseek2: per-expert matrices stacked into one 3-D tensor per layer, and
//    kv_b split into attn_k_b (transposed per head) and attn_v_b;
//  - llama-3 rope scaling: `rope_freqs` computed from the config.
// FP8 `<name>_scale_inv` tensors are consumed with their weight; multi-token
// prediction layers are skipped; any other tensor that maps nowhere is an error.
#pragma once

#include <string>
#include <vector>

#include "convert/hf_config.h"
#include "models/arch.h"

namespace moelite {

enum class TensorTransform {
    None,
    PermuteRopeRows,  // llama q/k weight or bias; heads in ConvertItem::heads
    StackExperts,     // sources are the n_expert per-expert matrices, in order
    SplitKvBK,        // source kv_b [n_head * (nope + v), kv_lora] -> k_b [nope, kv_lora, n_head] (ne)
    SplitKvBV,        // source kv_b -> v_b [kv_lora, v, n_head] (ne)
    Llama3RopeFreqs,  // no source: computed from HfConfig::llama3_rope
};

struct ConvertItem {
    TensorSpec spec;  // GGUF name, role, layer, shape (ne order)
    TensorTransform transform = TensorTransform::None;
    int64_t heads = 0;                 // PermuteRopeRows
    std::vector<std::string> sources;  // Hugging Face names
};

struct ConvertPlan {
    std::vector<ConvertItem> items;    // in GGUF write order
    std::vector<std::string> skipped;  // HF tensors deliberately left out (MTP layers, tied lm_head)
};

// Builds the plan for a checkpoint whose tensor names are `hf_names`. Fails
// (Error naming `source_name` and the tensor) on a required tensor with no
// source and on any source tensor that maps to nothing.
ConvertPlan plan_conversion(const HfConfig& config, const std::vector<std::string>& hf_names,
                            const std::string& source_name);

}  // namespace moelite
