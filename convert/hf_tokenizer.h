// Hugging Face tokenizer files -> the GGUF tokenizer metadata llama.cpp reads.
//
// Reads tokenizer.json (a byte-level BPE: model.vocab, model.merges,
// added_tokens, pre_tokenizer) and tokenizer_config.json (special tokens,
// add_bos_token / add_eos_token, chat_template) and produces the lists a GGUF
// file carries, following llama.cpp's converter:
//  - tokens by id, padded with "[PAD<id>]" (type UNUSED) up to the model's
//    vocab_size, as llama.cpp pads; a tokenizer with an id at or past
//    vocab_size is refused (the model would have no embedding row for it);
//  - token types: 1 normal, 3 control (special added tokens and those that
//    look special: "<|...|>", "<｜...｜>"), 4 user-defined (other added
//    tokens), 5 unused (padding);
//  - merges as "left right" strings (a space inside a piece written as U+0120,
//    as llama.cpp does for the newer pair form);
//  - tokenizer.ggml.pre from the pre-tokenizer's split patterns: "qwen2",
//    "llama-bpe", "deepseek-v3" or "deepseek-llm"; any other pre-tokenizer is
//    refused, since a wrong one would silently tokenize differently.
//    (models/tokenizer.h detects the family from the same file for the
//    runtime; this is the converter's own small copy of that rule.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/gguf_value.h"

namespace moelite {

enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct HfTokenizer {
    std::string pre;  // tokenizer.ggml.pre
    std::vector<std::string> tokens;
    std::vector<int32_t> token_types;
    std::vector<std::string> merges;
    int64_t n_real_tokens = 0;  // before padding
    std::optional<uint32_t> bos_id, eos_id, unk_id, pad_id;
    std::optional<bool> add_bos, add_eos;
    std::string chat_template;  // empty when none
    std::vector<std::pair<std::string, std::string>> named_templates;  // (name, template), besides the default
};

// Loads `dir`/tokenizer.json (+ tokenizer_config.json when present) for a model
// whose vocab_size is `n_vocab`. Fallback special-token ids (config.json's
// bos_token_id / eos_token_id) fill what tokenizer_config.json leaves unset.
// Errors name the file.
HfTokenizer hf_tokenizer_load(const std::string& dir, int64_t n_vocab, std::optional<int64_t> config_bos,
                              std::optional<int64_t> config_eos);

// The pre-tokenizer family of a tokenizer.json's "pre_tokenizer" (JSON text of
// that object), or "" when unknown.
std::string hf_tokenizer_detect_pre(const std::string& pre_tokenizer_json);

// The GGUF key/values for the tokenizer, in llama.cpp's order.
std::vector<GgufKV> hf_tokenizer_metadata(const HfTokenizer& tok);

}  // namespace moelite
