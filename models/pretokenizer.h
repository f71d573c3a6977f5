// The pre-tokenizers of the DeepSeek family's byte-level BPE tokenizers:
// splitting text into the pieces that BPE then encodes one at a time.
//
// Each family's Hugging Face tokenizer.json describes its pre-tokenizer as a
// Sequence of Split regexes (behavior "Isolated": both the matches and the gaps
// between them become pieces; each later regex splits the pieces of the earlier
// ones, never across their boundaries) followed by a ByteLevel step that only
// maps bytes. Rather than run a regex engine, each known regex is written out
// here by hand as a matcher that follows the regex's semantics exactly
// (leftmost-first alternation, greedy quantifiers, backtracking where it can
// change the result). A tokenizer.json whose regexes are not one of the known
// sequences is rejected by the loader. The families (GGUF tokenizer.ggml.pre):
//  - qwen2 ("qwen2", "deepseek-r1-qwen"): GPT-4-style regex, one digit a piece;
//  - llama3 ("llama-bpe", "llama3", "llama-v3"): the same with digit runs of 1-3;
//  - deepseek-v3 ("deepseek-v3"): digits 1-3, then CJK/kana runs, then a
//    regex that keeps letters and combining marks together;
//  - deepseek-llm ("deepseek-llm"): six Splits of the DeepSeek LLM 7B/67B.
// \s is Unicode White_Space; \p{..} are general categories (models/unicode.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moelite {

enum class PreTokenizerKind { Qwen2, Llama3, DeepseekV3, DeepseekLlm };

// The canonical GGUF tokenizer.ggml.pre value of a family.
std::string_view pre_tokenizer_gguf_name(PreTokenizerKind kind);
// A GGUF tokenizer.ggml.pre value (aliases accepted), or nullopt if unknown.
std::optional<PreTokenizerKind> pre_tokenizer_from_gguf_name(std::string_view name);
// The family whose tokenizer.json Split regexes are exactly these (in order),
// or nullopt. A literal CR or LF in a regex counts the same as \r or \n.
std::optional<PreTokenizerKind> pre_tokenizer_from_regexes(const std::vector<std::string>& regexes);
// The Split regexes of a family, as tokenizer.json writes them.
std::vector<std::string> pre_tokenizer_regexes(PreTokenizerKind kind);

// A piece of text: bytes [begin, end).
struct TextSpan {
    uint32_t begin;
    uint32_t end;
};

// Working memory for pre_tokenize, reused across calls to avoid allocations.
struct PreTokenizerBuffers {
    std::vector<uint32_t> code_points;
    std::vector<uint8_t> flags;
    std::vector<uint32_t> offsets;  // byte offset of each code point, plus the end
    std::vector<TextSpan> stage_a, stage_b;
};

// Splits text (at most 4 GiB) into pieces, appended to `pieces` in order; the
// pieces cover the text exactly and none is empty. Invalid UTF-8 bytes are
// characters without any category (see unicode.h).
void pre_tokenize(PreTokenizerKind kind, std::string_view text, std::vector<TextSpan>& pieces,
                  PreTokenizerBuffers& buffers);

}  // namespace moelite
