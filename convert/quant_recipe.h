// Quantization recipes: which type each tensor of a model is written in.
//
// A recipe is a file type (`--type`) plus overrides. Plain types (f32, f16,
// bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k) put every quantizable
// tensor in that type, as llama.cpp's converter does with --outtype. The
// mixtures q4_k_m and q5_k_m follow llama.cpp's llama-quantize rules (learned
// from its src/llama-quant.cpp), so that our files match its files tensor for
// tensor:
//  - output.weight (token_embd.weight when the embeddings are tied) is q6_k,
//    or q8_0 when its rows do not fit q6_k's 256-element blocks;
//  - attn_v / attn_kv_b / attn_qkv and every ffn_down* tensor (dense, shared
//    and stacked experts) get q6_k on the layers use_more_bits() picks: the
//    first and last eighth of the layers and every third layer between;
//  - the 80-layer GQA Llama/Qwen2 models (70B) get q5_k instead of q4_k on
//    attn_v;
//  - everything else quantizable is q4_k (q5_k for q5_k_m).
// Tensors that are never quantized: 1-D tensors, *_norm.weight, anything not
// named *.weight (biases), and the MoE router ffn_gate_inp (kept f32, as
// llama.cpp does). Overrides then apply in this order of precedence:
// --override REGEX=TYPE (the first pattern that matches the name, searched
// anywhere in it), then the class overrides (--experts: *_exps tensors,
// --embed: token_embd, --attn: attn_* weights), then the mixture rule.
// Finally, a row length (ne[0]) that is not a multiple of the chosen type's
// block falls back to a type that fits (q4_k -> q5_0, q5_k -> q5_1,
// q6_k -> q8_0, then f16), with a note.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "models/arch.h"

namespace moelite {

// llama.cpp's LLAMA_FTYPE values, written as general.file_type.
enum class FileType : uint32_t {
    AllF32 = 0,
    MostlyF16 = 1,
    MostlyQ4_0 = 2,
    MostlyQ4_1 = 3,
    MostlyQ8_0 = 7,
    MostlyQ5_0 = 8,
    MostlyQ5_1 = 9,
    MostlyQ4_K_S = 14,
    MostlyQ4_K_M = 15,
    MostlyQ5_K_S = 16,
    MostlyQ5_K_M = 17,
    MostlyQ6_K = 18,
    MostlyBF16 = 32,
};

struct RecipeOverride {
    std::string pattern;  // as the user wrote it
    std::regex regex;
    DType type;
};

struct QuantRecipe {
    std::string name;         // "q4_k_m"
    DType base = DType::F16;  // the type of the bulk of the weights
    bool mixture = false;     // q4_k_m / q5_k_m rules
    FileType file_type = FileType::MostlyF16;
    std::optional<DType> experts, attn, embed;
    std::vector<RecipeOverride> overrides;
};

// What the recipe needs to know about the model.
struct RecipeModel {
    std::optional<Arch> arch;  // none for an architecture we have no family rules for
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    bool tied_embeddings = false;  // no output.weight: token_embd plays its part
};

// The recipe's view of a model of shape `hp` (synthetic models, tests).
RecipeModel recipe_model(const HParams& hp);

struct TypeChoice {
    DType type;
    std::string note;  // non-empty when a fallback or override changed the type
};

// The recipe names `--type` accepts, for help texts: "f32, f16, ...".
std::string recipe_type_names();
// A file type name ("q4_k_m", case-insensitive); Error naming `what` (the
// flag) when unknown.
QuantRecipe recipe_from_name(std::string_view name, const char* what = "--type");
// A per-tensor type for an override ("q6_k", "f16", ...): any type we can
// quantize weights to. Error naming `what` when unknown.
DType recipe_tensor_type(std::string_view name, const char* what);
// "REGEX=TYPE" -> an override; Error on a bad regex or type.
RecipeOverride recipe_override(std::string_view spec);

// True when a tensor named `name` with `n_dims` dims is ever quantized.
bool tensor_is_quantizable(std::string_view name, int n_dims);

// The type of tensor `name` of shape `ne` (ne order) under `recipe`.
TypeChoice recipe_choose(const QuantRecipe& recipe, const RecipeModel& model, std::string_view name,
                         const std::vector<int64_t>& ne);

// llama.cpp's choice of which layers get more bits.
bool recipe_use_more_bits(int64_t layer, int64_t n_layer);

}  // namespace moelite
