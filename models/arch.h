// Architectures, their hyper-parameters, and the one declaration of each
// architecture's tensors.
//
// Names and keys follow llama.cpp's GGUF conventions (a file it writes must
// load here, and ours there). Every tensor an architecture may hold is
// declared once in models/arch.cpp: its role, GGUF name pattern, shape as a
// function of the hyper-parameters, and whether it is required. Loading,
// converting, placement and synthetic models all read that declaration.
//
// GGUF shapes are ne order: ne[0] is the contiguous (input-feature) dimension,
// so a Linear(in, out) weight is {in, out}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moelite {

enum class Arch { Llama, Qwen2, Deepseek2 };

const char* arch_name(Arch arch);  // the general.architecture value
std::optional<Arch> arch_from_name(std::string_view name);

enum class RopeScaling { None, Linear, Yarn, Llama3 };
enum class ExpertGating { Softmax = 1, Sigmoid = 2 };  // llama.cpp's expert_gating_func values

// Bounds the loader (models/model.cpp) and the converter hold metadata to:
// counts and sizes of any real model are far below kMaxHParamCount (larger
// values are lies that would overflow shape arithmetic), vocabularies below
// kMaxVocab.
inline constexpr int64_t kMaxHParamCount = int64_t(1) << 31;
inline constexpr int64_t kMaxVocab = int64_t(1) << 24;

// Everything the graph builders need to know about a model's shape.
// Field comments give the GGUF key (with {arch}. prefix) each one comes from.
struct HParams {
    Arch arch = Arch::Llama;
    int64_t n_vocab = 0;        // vocab_size, or the length of tokenizer.ggml.tokens
    int64_t n_ctx_train = 0;    // context_length
    int64_t n_embd = 0;         // embedding_length
    int64_t n_ff = 0;           // feed_forward_length (dense FFN width)
    int64_t n_layer = 0;        // block_count (without multi-token-prediction layers)
    int64_t n_head = 0;         // attention.head_count
    int64_t n_head_kv = 0;      // attention.head_count_kv (default n_head)
    int64_t head_dim_k = 0;     // attention.key_length (default n_embd / n_head)
    int64_t head_dim_v = 0;     // attention.value_length (default head_dim_k)
    float rms_eps = 1e-5f;      // attention.layer_norm_rms_epsilon
    float rope_freq_base = 10000.0f;  // rope.freq_base
    int64_t n_rot = 0;                // rope.dimension_count (default head_dim_k)
    RopeScaling rope_scaling = RopeScaling::None;  // rope.scaling.type
    float rope_scaling_factor = 1.0f;              // rope.scaling.factor
    int64_t rope_orig_ctx = 0;                     // rope.scaling.original_context_length
    float rope_yarn_log_mul = 0.0f;                // rope.scaling.yarn_log_multiplier (as stored)
    float rope_yarn_beta_fast = 32.0f;             // rope.scaling.yarn_beta_fast: rotations where YaRN's ramp starts
    float rope_yarn_beta_slow = 1.0f;              // rope.scaling.yarn_beta_slow: and where it ends
    bool tied_embeddings = false;                  // no output.weight in the file

    // deepseek2: Multi-head Latent Attention
    int64_t q_lora_rank = 0;     // attention.q_lora_rank (0: plain q projection, as V2-Lite)
    int64_t kv_lora_rank = 0;    // attention.kv_lora_rank
    int64_t head_dim_k_mla = 0;  // attention.key_length_mla (qk_nope + qk_rope); 0 in old files
    int64_t head_dim_v_mla = 0;  // attention.value_length_mla; 0 in old files
    // deepseek2: mixture of experts
    int64_t n_expert = 0;            // expert_count
    int64_t n_expert_used = 0;       // expert_used_count
    int64_t n_expert_shared = 0;     // expert_shared_count
    int64_t n_ff_exp = 0;            // expert_feed_forward_length
    int64_t n_layer_dense_lead = 0;  // leading_dense_block_count
    float expert_weights_scale = 1.0f;  // expert_weights_scale (routed scaling factor)
    bool expert_weights_norm = false;   // expert_weights_norm
    ExpertGating expert_gating = ExpertGating::Softmax;  // expert_gating_func
    int64_t n_expert_groups = 0;      // expert_group_count
    int64_t n_expert_groups_used = 0; // expert_group_used_count
    int64_t n_layer_nextn = 0;        // nextn_predict_layers (MTP; skipped)

    // deepseek2 derived sizes: per-head key width with and without RoPE part.
    bool is_mla() const { return head_dim_k_mla != 0; }
    int64_t qk_head_dim() const { return is_mla() ? head_dim_k_mla : head_dim_k; }
    int64_t v_head_dim() const { return is_mla() ? head_dim_v_mla : head_dim_v; }
    int64_t qk_rope_dim() const { return n_rot; }
    int64_t qk_nope_dim() const { return qk_head_dim() - n_rot; }
    bool layer_is_moe(int64_t il) const { return n_expert > 0 && il >= n_layer_dense_lead; }
};

// What a tensor is for: the graph builders, quantization recipes and
// placement policies refer to tensors by role, never by name.
enum class TensorRole {
    TokenEmbd,
    OutputNorm,
    Output,
    RopeFreqs,
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnQBias,
    AttnKBias,
    AttnVBias,
    AttnOutput,
    AttnQA,       // MLA: q down-projection
    AttnQANorm,
    AttnQB,       // MLA: q up-projection
    AttnKvAMqa,   // MLA: kv down-projection + shared RoPE key
    AttnKvANorm,
    AttnKvB,      // MLA: kv up-projection (old files), or split into:
    AttnKB,       //   per-head k_nope part, [qk_nope, kv_lora, n_head]
    AttnVB,       //   per-head v part, [kv_lora, v_head, n_head]
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
    FfnGateInp,   // MoE router
    FfnExpProbsB, // MoE selection bias (chooses experts, never weights them)
    FfnGateExps,
    FfnUpExps,
    FfnDownExps,
    FfnGateShexp,
    FfnUpShexp,
    FfnDownShexp,
    Count,
};

const char* tensor_role_name(TensorRole role);

// The MoE layer's stacked experts (ffn_*_exps, one slice per expert).
inline bool is_expert_stack(TensorRole role) {
    return role == TensorRole::FfnGateExps || role == TensorRole::FfnUpExps || role == TensorRole::FfnDownExps;
}

// Weights read by ops other than mul_mat: norms' weights, biases, the MoE
// selection bias, RoPE frequency factors.
inline bool is_non_mul_mat_weight(TensorRole role) {
    switch (role) {
        case TensorRole::OutputNorm:
        case TensorRole::RopeFreqs:
        case TensorRole::AttnNorm:
        case TensorRole::AttnQBias:
        case TensorRole::AttnKBias:
        case TensorRole::AttnVBias:
        case TensorRole::AttnQANorm:
        case TensorRole::AttnKvANorm:
        case TensorRole::FfnNorm:
        case TensorRole::FfnExpProbsB:
            return true;
        default:
            return false;
    }
}

enum class TensorNeed {
    Required,
    Optional,      // may be absent (e.g. output.weight with tied embeddings)
    OneOfKvB,      // deepseek2: either attn_kv_b, or attn_k_b + attn_v_b
};

struct TensorDecl {
    TensorRole role;
    const char* name;  // GGUF name; "%d" stands for the layer index
    bool per_layer;
    TensorNeed need;
    // GGUF shape (ne order) for this model and layer; empty when the tensor
    // does not exist in that layer (e.g. experts in a dense layer).
    std::vector<int64_t> (*shape)(const HParams& hp, int64_t layer);
};

const std::vector<TensorDecl>& arch_tensor_decls(Arch arch);

// One concrete tensor of a concrete model.
struct TensorSpec {
    TensorRole role;
    int64_t layer;  // -1 for global tensors
    std::string name;
    std::vector<int64_t> shape;
    TensorNeed need;
};

// Every tensor the model may have, in declaration order (globals first, then
// layer by layer).
std::vector<TensorSpec> arch_tensor_specs(const HParams& hp);

// "blk.3.attn_q.weight" from a pattern and a layer.
std::string tensor_name(const char* pattern, int64_t layer);

}  // namespace moelite
