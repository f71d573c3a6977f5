// The byte-level BPE tokenizer of the DeepSeek family (R1 distills on Qwen2.5
// and Llama-3 vocabularies, DeepSeek-V3/R1, DeepSeek LLM).
//
// Loads from a Hugging Face tokenizer.json (+ tokenizer_config.json), or from
// GGUF tokenizer metadata handed over as plain data (TokenizerMetadata; the
// GGUF reader fills it). Encoding follows Hugging Face `tokenizers`:
//  1. added tokens (special or not) are matched in the raw text first,
//     leftmost-longest, honouring lstrip/rstrip/single_word; those flagged
//     `normalized` are matched after normalization, as HF does;
//  2. the text between them is normalized (NFC for qwen2, else nothing);
//  3. pre-tokenized by the family's hand-written splitter (pretokenizer.h);
//  4. each piece is BPE-encoded on its UTF-8 bytes: the adjacent pair with the
//     lowest merge rank is merged first (leftmost on ties); with
//     `ignore_merges` (llama3) a piece that is itself a token is taken whole.
// Decoding maps tokens back to their bytes; an added token decodes to its text.
// Pieces of a multi-byte character may be split across tokens, so one token's
// bytes need not be valid UTF-8.
//
// A Tokenizer is immutable after loading and cheap to copy (copies share the
// tables); all methods are const and safe to call from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "models/pretokenizer.h"

namespace moelite {

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,      // special added tokens: BOS, EOS, chat markers
    UserDefined = 4,  // non-special added tokens: matched in text, decoded as text
    Unused = 5,       // holes in the id space
    Byte = 6,
};

// The GGUF tokenizer.ggml.* metadata as plain data. Tokens are in their GGUF
// form: normal tokens byte-level encoded (GPT-2 bytes_to_unicode: "Ġthe"),
// control and user-defined ones as their literal text. Merges are "left right"
// in the byte-level form, in rank order.
struct TokenizerMetadata {
    std::string model = "gpt2";        // tokenizer.ggml.model; only "gpt2" (byte-level BPE)
    std::string pre;                   // tokenizer.ggml.pre, e.g. "qwen2", "llama-bpe", "deepseek-v3"
    std::vector<std::string> tokens;   // tokenizer.ggml.tokens
    std::vector<int32_t> token_types;  // tokenizer.ggml.token_type; empty = all normal
    std::vector<std::string> merges;   // tokenizer.ggml.merges
    int32_t bos_id = -1;               // tokenizer.ggml.bos_token_id (-1: none)
    int32_t eos_id = -1;               // tokenizer.ggml.eos_token_id
    int32_t eot_id = -1;               // tokenizer.ggml.eot_token_id (-1: found by name)
    int32_t pad_id = -1;               // tokenizer.ggml.padding_token_id
    std::optional<bool> add_bos;       // tokenizer.ggml.add_bos_token (absent: the family's default)
    std::optional<bool> add_eos;       // tokenizer.ggml.add_eos_token
    std::string chat_template;         // tokenizer.chat_template, carried along
};

class Tokenizer {
  public:
    // Loads tokenizer.json; tokenizer_config.json (optional, "" for none) gives
    // bos/eos/pad, add_bos_token and the chat template. Throws Error naming the
    // file on anything malformed or unsupported (an unknown pre-tokenizer regex,
    // byte fallback, a normalizer other than NFC).
    static Tokenizer from_hf_files(const std::string& tokenizer_json_path, const std::string& config_path = "");
    // Builds from GGUF metadata; `source` names the file in error messages.
    // Note: for the qwen2 family, NFC normalization is applied as the model's
    // tokenizer.json asks (llama.cpp skips it).
    static Tokenizer from_metadata(const TokenizerMetadata& metadata, const std::string& source);
    // The GGUF metadata of this tokenizer, for writing a GGUF file; ids past
    // the vocabulary up to `min_vocab_size` are filled with unused "[PADn]"
    // tokens. Added tokens that look like markers (<|..|>, <｜..｜>) become
    // control tokens, as llama.cpp's converter does.
    TokenizerMetadata to_metadata(size_t min_vocab_size = 0) const;

    // Token ids of text. add_bos prepends BOS (when the vocabulary has one);
    // parse_special = false leaves special (control) tokens written in the text
    // as plain text, while non-special added tokens are still matched.
    std::vector<int32_t> encode(std::string_view text, bool add_bos = false, bool parse_special = true) const;
    // The bytes of the tokens, concatenated. Throws Error on an id out of range.
    std::string decode(std::span<const int32_t> ids) const;
    // The bytes of one token (for streaming: may end inside a UTF-8 character).
    // Control and user-defined tokens give their text, unused ones nothing.
    // Throws Error on an id out of range.
    const std::string& token_to_piece(int32_t id) const;

    size_t vocab_size() const;
    // The token's text as the vocabulary writes it (byte-level form for normal
    // tokens). Throws Error on an id out of range.
    const std::string& token_text(int32_t id) const;
    // The id of a token given its vocabulary text, or nullopt.
    std::optional<int32_t> token_id(std::string_view text) const;
    TokenType token_type(int32_t id) const;  // Undefined for ids out of range
    bool is_special(int32_t id) const;       // an added token (control or user-defined)
    bool is_control(int32_t id) const;
    bool is_eog(int32_t id) const;  // ends generation: EOS, EOT and their kin

    int32_t bos_id() const;  // -1 when none
    int32_t eos_id() const;
    int32_t eot_id() const;  // end of turn; falls back to EOS
    int32_t pad_id() const;
    bool add_bos() const;  // whether the model expects BOS at the start of a prompt
    bool add_eos() const;
    PreTokenizerKind pre_tokenizer() const;
    const std::string& chat_template() const;  // "" when the source had none

    struct Impl;

  private:
    explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

// GPT-2's byte-level alphabet: the character standing for each byte
// (printable Latin-1 bytes stand for themselves, the rest for U+0100 on).
uint32_t byte_level_char(uint8_t byte);
// The byte a character stands for, or -1 when it is not in the alphabet.
int byte_level_byte(uint32_t cp);
// Byte-level encoding of raw bytes, and back (nullopt if a character is not
// in the alphabet).
std::string byte_level_encode(std::string_view bytes);
std::optional<std::string> byte_level_decode(std::string_view text);

}  // namespace moelite
