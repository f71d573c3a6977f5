// Internals of models/tokenizer.h, shared by its source files (tokenizer.cpp:
// tables, encoding, decoding, GGUF metadata; tokenizer_hf.cpp: tokenizer.json).
// Not for use elsewhere.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "models/tokenizer.h"

namespace moelite {

// An added token (tokenizer.json "added_tokens", or a control/user-defined
// token of a GGUF vocabulary).
struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false;      // a control token: skipped when parse_special is off
    bool lstrip = false;       // swallows white space on its left
    bool rstrip = false;       // swallows white space on its right
    bool single_word = false;  // only matches between non-word characters
    bool normalized = false;   // matched in the normalized text, not the raw one
};

// Byte strings -> token id, open addressing over the tokens' own bytes (no
// copies of the keys).
class PieceMap {
  public:
    void build(const std::vector<std::string>& pieces, const std::vector<bool>& include);
    int32_t find(std::string_view key) const;  // -1 when absent

  private:
    const std::vector<std::string>* pieces_ = nullptr;
    std::vector<int32_t> slots_{-1};
    size_t mask_ = 0;
};

// (left id, right id) -> (rank, merged id), open addressing.
class MergeMap {
  public:
    struct Value {
        int32_t rank;
        int32_t id;
    };
    void build(const std::vector<std::pair<int32_t, int32_t>>& pairs, const std::vector<int32_t>& merged);
    // Rank and result of merging (left, right); rank -1 when they do not merge.
    Value find(int32_t left, int32_t right) const {
        const uint64_t key = (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
        for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
            const Entry& e = entries_[i];
            if (e.key == key) return {e.rank, e.id};
            if (e.key == kEmpty) return {-1, -1};
        }
    }

  private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    struct Entry {
        uint64_t key = kEmpty;
        int32_t rank = -1;
        int32_t id = -1;
    };
    size_t slot_of(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_); }
    std::vector<Entry> entries_ = std::vector<Entry>(2);
    size_t mask_ = 1;
    int shift_ = 63;
};

// A byte trie over added-token contents, for leftmost-longest matching.
class AddedTokenTrie {
  public:
    void insert(std::string_view content, int32_t added_index);
    bool empty() const { return nodes_.size() == 1; }
    bool may_start(uint8_t byte) const { return first_byte_[byte]; }
    // The longest accepted match at text[pos..]: {added index, length}, or
    // {-1, 0}. `accept(added_index)` filters (parse_special off).
    template <typename Accept>
    std::pair<int32_t, size_t> longest(std::string_view text, size_t pos, Accept&& accept) const {
        std::pair<int32_t, size_t> best{-1, 0};
        int32_t node = 0;
        for (size_t i = pos; i < text.size(); ++i) {
            node = child(node, uint8_t(text[i]));
            if (node < 0) break;
            const int32_t index = nodes_[node].added_index;
            if (index >= 0 && accept(index)) best = {index, i + 1 - pos};
        }
        return best;
    }

  private:
    struct Node {
        std::vector<std::pair<uint8_t, int32_t>> edges;
        int32_t added_index = -1;
    };
    int32_t child(int32_t node, uint8_t byte) const {
        for (const auto& [b, next] : nodes_[node].edges) {
            if (b == byte) return next;
        }
        return -1;
    }
    std::vector<Node> nodes_{Node{}};
    std::array<bool, 256> first_byte_{};
};

struct Tokenizer::Impl {
    std::string source;  // file name for messages

    // Per token id.
    std::vector<std::string> texts;   // vocabulary form (byte-level for normal tokens)
    std::vector<std::string> pieces;  // the bytes it decodes to
    std::vector<TokenType> types;

    std::unordered_map<std::string, int32_t> text_to_id;
    PieceMap piece_to_id;                                  // normal tokens by their bytes (BPE and ignore_merges)
    std::array<int32_t, 256> byte_ids{};                   // the token of each single byte (-1: none)
    std::vector<std::pair<int32_t, int32_t>> merge_pairs;  // by rank
    MergeMap merges;

    std::vector<AddedToken> added;
    AddedTokenTrie raw_trie;         // added tokens matched before normalization
    AddedTokenTrie normalized_trie;  // those matched after

    PreTokenizerKind pre = PreTokenizerKind::Llama3;
    bool nfc = false;
    bool ignore_merges = false;

    int32_t bos = -1, eos = -1, eot = -1, pad = -1;
    bool add_bos = false, add_eos = false;
    std::vector<int32_t> eog;
    std::string chat_template;

    // Fills pieces, the lookup tables and the tries from texts, types, added and
    // the merges (given as vocabulary texts, in rank order), and resolves EOT/EOG.
    // Throws Error naming `source` on a merge of unknown tokens.
    void finalize(const std::vector<std::pair<std::string, std::string>>& merge_texts);
};

// DeepSeek's sentence markers (U+FF5C FULLWIDTH VERTICAL LINE, U+2581 LOWER ONE EIGHTH BLOCK).
inline constexpr const char* kDeepseekBeginOfSentence = "<｜begin▁of▁sentence｜>";
inline constexpr const char* kDeepseekEndOfSentence = "<｜end▁of▁sentence｜>";

// Whether an added token's text looks like a control marker (<|...|>, <｜...｜>).
bool added_token_looks_special(std::string_view content);

}  // namespace moelite
