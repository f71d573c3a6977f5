// The byte-level BPE tokenizer: lookup tables, encoding (added tokens,
// normalization, pre-tokenization, BPE merges), decoding, and the GGUF
// metadata form. tokenizer.json is read in tokenizer_hf.cpp.
#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <queue>

#include "core/error.h"
#include "core/log.h"
#include "models/tokenizer_impl.h"
#include "models/unicode.h"

namespace moelite {

// ---------------------------------------------------------------------------
// GPT-2 byte-level alphabet

namespace {

bool byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct ByteLevelTables {
    std::array<uint32_t, 256> to_char{};
    std::array<int16_t, 0x144> to_byte{};  // every character of the alphabet is below U+0144
    ByteLevelTables() {
        to_byte.fill(-1);
        uint32_t next = 0x100;
        for (int b = 0; b < 256; ++b) {
            to_char[b] = byte_is_printable(b) ? uint32_t(b) : next++;
            to_byte[to_char[b]] = int16_t(b);
        }
    }
};

const ByteLevelTables& byte_level_tables() {
    static const ByteLevelTables tables;
    return tables;
}

}  // namespace

uint32_t byte_level_char(uint8_t byte) {
    return byte_level_tables().to_char[byte];
}

int byte_level_byte(uint32_t cp) {
    return cp < 0x144 ? byte_level_tables().to_byte[cp] : -1;
}

std::string byte_level_encode(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) unicode::utf8_append(out, byte_level_char(uint8_t(c)));
    return out;
}

std::optional<std::string> byte_level_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        size_t len;
        const int b = byte_level_byte(unicode::utf8_decode(text.data() + i, text.size() - i, &len));
        if (b < 0) return std::nullopt;
        out.push_back(char(b));
        i += len;
    }
    return out;
}

bool added_token_looks_special(std::string_view s) {
    auto wrapped = [&](std::string_view open, std::string_view close) {
        return s.size() >= open.size() + close.size() && s.substr(0, open.size()) == open &&
               s.substr(s.size() - close.size()) == close;
    };
    return wrapped("<|", "|>") || wrapped("<｜", "｜>");
}

// ---------------------------------------------------------------------------
// Tables

namespace {

size_t table_size_for(size_t count) {
    size_t size = 16;
    while (size < count * 2) size *= 2;
    return size;
}

}  // namespace

void PieceMap::build(const std::vector<std::string>& pieces, const std::vector<bool>& include) {
    pieces_ = &pieces;
    slots_.assign(table_size_for(pieces.size()), -1);
    mask_ = slots_.size() - 1;
    for (size_t id = 0; id < pieces.size(); ++id) {
        if (!include[id]) continue;
        size_t i = std::hash<std::string_view>{}(pieces[id]) & mask_;
        while (slots_[i] >= 0 && pieces[slots_[i]] != pieces[id]) i = (i + 1) & mask_;
        if (slots_[i] < 0) slots_[i] = int32_t(id);  // the first id of a duplicate piece wins
    }
}

int32_t PieceMap::find(std::string_view key) const {
    for (size_t i = std::hash<std::string_view>{}(key)&mask_;; i = (i + 1) & mask_) {
        const int32_t id = slots_[i];
        if (id < 0 || (*pieces_)[id] == key) return id;
    }
}

void MergeMap::build(const std::vector<std::pair<int32_t, int32_t>>& pairs, const std::vector<int32_t>& merged) {
    const size_t size = table_size_for(pairs.size());
    entries_.assign(size, Entry{});
    mask_ = size - 1;
    shift_ = 64 - std::countr_zero(size);
    for (size_t rank = 0; rank < pairs.size(); ++rank) {
        const uint64_t key = (uint64_t(uint32_t(pairs[rank].first)) << 32) | uint32_t(pairs[rank].second);
        size_t i = slot_of(key);
        while (entries_[i].key != kEmpty && entries_[i].key != key) i = (i + 1) & mask_;
        if (entries_[i].key == kEmpty) entries_[i] = Entry{key, int32_t(rank), merged[rank]};  // first rank wins
    }
}

void AddedTokenTrie::insert(std::string_view content, int32_t added_index) {
    if (content.empty()) return;
    first_byte_[uint8_t(content[0])] = true;
    int32_t node = 0;
    for (char c : content) {
        int32_t next = child(node, uint8_t(c));
        if (next < 0) {
            next = int32_t(nodes_.size());
            nodes_[node].edges.emplace_back(uint8_t(c), next);
            nodes_.emplace_back();
        }
        node = next;
    }
    if (nodes_[node].added_index < 0) nodes_[node].added_index = added_index;
}

void Tokenizer::Impl::finalize(const std::vector<std::pair<std::string, std::string>>& merge_texts) {
    const size_t n = texts.size();
    MOELITE_ASSERT(types.size() == n);
    text_to_id.reserve(n);
    for (size_t id = 0; id < n; ++id) {
        if (types[id] != TokenType::Unused) text_to_id.emplace(texts[id], int32_t(id));
    }

    pieces.assign(n, std::string());
    std::vector<bool> in_piece_map(n, false);
    for (size_t id = 0; id < n; ++id) {
        switch (types[id]) {
            case TokenType::Control:
            case TokenType::UserDefined:
                pieces[id] = texts[id];
                break;
            case TokenType::Unused:
                break;
            default:
                if (auto bytes = byte_level_decode(texts[id])) {
                    pieces[id] = std::move(*bytes);
                    in_piece_map[id] = !pieces[id].empty();
                } else {
                    pieces[id] = texts[id];  // not byte-level text: decodes as written, never produced by BPE
                }
        }
    }
    piece_to_id.build(pieces, in_piece_map);
    for (int b = 0; b < 256; ++b)
        byte_ids[b] = piece_to_id.find(std::string_view(reinterpret_cast<const char*>(&b), 1));

    merge_pairs.clear();
    merge_pairs.reserve(merge_texts.size());
    std::vector<int32_t> merged;
    merged.reserve(merge_texts.size());
    std::string joined;
    for (size_t rank = 0; rank < merge_texts.size(); ++rank) {
        const auto& [left, right] = merge_texts[rank];
        joined.assign(left).append(right);
        const auto l = text_to_id.find(left), r = text_to_id.find(right), m = text_to_id.find(joined);
        if (l == text_to_id.end() || r == text_to_id.end() || m == text_to_id.end()) {
            fail("%s: merge %zu ('%s' '%s') names a token that is not in the vocabulary", source.c_str(), rank,
                 left.c_str(), right.c_str());
        }
        merge_pairs.emplace_back(l->second, r->second);
        merged.push_back(m->second);
    }
    merges.build(merge_pairs, merged);

    // As in HF: tokens flagged `normalized` are looked for in the normalized
    // text, in their normalized form; the others in the raw text first.
    for (size_t i = 0; i < added.size(); ++i) {
        if (added[i].normalized) {
            normalized_trie.insert(nfc ? unicode::nfc(added[i].content) : added[i].content, int32_t(i));
        } else {
            raw_trie.insert(added[i].content, int32_t(i));
        }
    }

    // End of turn: DeepSeek's end of sentence, else the usual chat markers, else EOS.
    auto find_text = [&](std::string_view t) {
        const auto it = text_to_id.find(std::string(t));
        return it == text_to_id.end() ? -1 : it->second;
    };
    if (eot < 0) {
        for (const char* t : {kDeepseekEndOfSentence, "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>"}) {
            if ((eot = find_text(t)) >= 0) break;
        }
        if (eot < 0) eot = eos;
    }
    eog.clear();
    for (int32_t id : {eos, eot}) {
        if (id >= 0) eog.push_back(id);
    }
    for (const char* t : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "<|EOT|>",
                          kDeepseekEndOfSentence}) {
        const int32_t id = find_text(t);
        if (id >= 0 && (types[id] == TokenType::Control || types[id] == TokenType::UserDefined)) eog.push_back(id);
    }
    std::sort(eog.begin(), eog.end());
    eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
}

// ---------------------------------------------------------------------------
// Encoding

namespace {

// Pieces with more symbols than this are merged with a heap instead of scans.
constexpr size_t kHeapMergeThreshold = 48;

bool white_space_at(std::string_view s, size_t pos, size_t* length) {
    const uint32_t cp = unicode::utf8_decode(s.data() + pos, s.size() - pos, length);
    return unicode::flags(cp) & unicode::kWhiteSpace;
}

// The code point ending at s[pos - 1], and where it starts.
uint32_t code_point_before(std::string_view s, size_t pos, size_t* start) {
    size_t begin = pos - 1;
    while (begin > 0 && pos - begin < 4 && (uint8_t(s[begin]) & 0xC0) == 0x80) --begin;
    size_t len;
    uint32_t cp = unicode::utf8_decode(s.data() + begin, pos - begin, &len);
    if (begin + len != pos) {  // not one well-formed character: the last byte alone
        begin = pos - 1;
        cp = unicode::kInvalidBase + uint8_t(s[begin]);
    }
    *start = begin;
    return cp;
}

// A \w character (as HF's single_word check sees it): letters, marks, numbers,
// connector punctuation, and the zero-width (non-)joiners.
bool is_word_char(uint32_t cp) {
    if (unicode::flags(cp) & (unicode::kLetter | unicode::kMark | unicode::kNumber)) return true;
    return cp == '_' || cp == 0x200C || cp == 0x200D ||
           (cp >= 0x80 && unicode::general_category(cp) == unicode::GeneralCategory::Pc);
}

// Per-call working memory, so a Tokenizer stays immutable and thread-safe.
class Encoder {
  public:
    Encoder(const Tokenizer::Impl& impl, bool parse_special, std::vector<int32_t>& out)
        : impl_(impl), parse_special_(parse_special), out_(out) {}

    void encode(std::string_view text) {
        split_added(text, impl_.raw_trie, [&](std::string_view segment) {
            std::string normalized;
            if (impl_.nfc && !unicode::nfc_quick_check(segment)) {
                normalized = unicode::nfc(segment);
                segment = normalized;
            }
            if (impl_.normalized_trie.empty()) {
                encode_plain(segment);
            } else {
                split_added(segment, impl_.normalized_trie, [&](std::string_view s) { encode_plain(s); });
            }
        });
    }

  private:
    // Finds the added tokens of `trie` in text; emits their ids, and passes the
    // text between them to on_text.
    template <typename OnText>
    void split_added(std::string_view text, const AddedTokenTrie& trie, OnText&& on_text) {
        if (trie.empty()) {
            if (!text.empty()) on_text(text);
            return;
        }
        auto accept = [&](int32_t index) { return parse_special_ || !impl_.added[index].special; };
        size_t text_start = 0;
        for (size_t pos = 0; pos < text.size();) {
            if (!trie.may_start(uint8_t(text[pos]))) {
                ++pos;
                continue;
            }
            const auto [index, length] = trie.longest(text, pos, accept);
            if (index < 0) {
                ++pos;
                continue;
            }
            const AddedToken& token = impl_.added[index];
            size_t start = pos, end = pos + length;
            if (token.single_word) {
                size_t before, after_len;
                const bool word_before = start > 0 && is_word_char(code_point_before(text, start, &before));
                const bool word_after = end < text.size() && is_word_char(unicode::utf8_decode(
                                                                 text.data() + end, text.size() - end, &after_len));
                if (word_before || word_after) {  // not a match; the text goes on after it
                    pos = end;
                    continue;
                }
            }
            if (token.lstrip) {
                size_t before;
                while (start > text_start &&
                       (unicode::flags(code_point_before(text, start, &before)) & unicode::kWhiteSpace)) {
                    start = before;
                }
            }
            size_t len;
            if (token.rstrip) {
                while (end < text.size() && white_space_at(text, end, &len)) end += len;
            }
            if (start > text_start) on_text(text.substr(text_start, start - text_start));
            out_.push_back(token.id);
            text_start = pos = end;
        }
        if (text_start < text.size()) on_text(text.substr(text_start));
    }

    void encode_plain(std::string_view text) {
        bytes_seen_ += text.size();
        if (cache_.empty() && bytes_seen_ >= kCacheAfterBytes) cache_.resize(kCacheSlots);
        spans_.clear();
        pre_tokenize(impl_.pre, text, spans_, pre_buffers_);
        for (const TextSpan& s : spans_) encode_piece(text.substr(s.begin, s.end - s.begin));
    }

    void encode_piece(std::string_view piece) {
        CacheSlot* slot = nullptr;
        if (!cache_.empty() && piece.size() <= CacheSlot::kMaxKey) {
            slot = &cache_[hash_piece(piece) & (cache_.size() - 1)];
            if (slot->key_length == piece.size() && std::memcmp(slot->key, piece.data(), piece.size()) == 0) {
                out_.insert(out_.end(), slot->ids, slot->ids + slot->count);
                return;
            }
        }
        if (impl_.ignore_merges || piece.size() == 1) {
            const int32_t id = impl_.piece_to_id.find(piece);
            if (id >= 0) {
                out_.push_back(id);
                if (slot) slot->store(piece, &id, 1);
                return;
            }
        }
        symbols_.clear();
        for (char c : piece) {
            const int32_t id = impl_.byte_ids[uint8_t(c)];
            if (id >= 0) symbols_.push_back(id);  // a byte without a token is dropped, as HF does
        }
        if (symbols_.size() <= kHeapMergeThreshold) {
            merge_by_scan(symbols_);
        } else {
            merge_by_heap(symbols_);
        }
        out_.insert(out_.end(), symbols_.begin(), symbols_.end());
        if (slot) slot->store(piece, symbols_.data(), symbols_.size());
    }

    // A direct-mapped cache of recent pieces and their ids, for long inputs
    // (words repeat). It lives in the Encoder, so it is per call.
    struct CacheSlot {
        static constexpr size_t kMaxKey = 22, kMaxIds = 8;
        uint8_t key_length = 0xFF;  // 0xFF: empty
        uint8_t count = 0;
        char key[kMaxKey];
        int32_t ids[kMaxIds];
        void store(std::string_view piece, const int32_t* values, size_t n) {
            if (n > kMaxIds) return;
            key_length = uint8_t(piece.size());
            std::memcpy(key, piece.data(), piece.size());
            count = uint8_t(n);
            std::memcpy(ids, values, n * sizeof(int32_t));
        }
    };
    static constexpr size_t kCacheSlots = 16384;
    static constexpr size_t kCacheAfterBytes = 16384;  // smaller inputs are not worth the table

    static uint64_t hash_piece(std::string_view s) {
        uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a, then a final mix
        for (char c : s) h = (h ^ uint8_t(c)) * 0x100000001B3ull;
        return (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull >> 32;
    }

  public:
    // Repeatedly merges the lowest-ranked adjacent pair (leftmost on ties),
    // scanning an array of pair ranks: O(n^2), fastest for short pieces.
    void merge_by_scan(std::vector<int32_t>& ids) {
        size_t n = ids.size();
        if (n < 2) return;
        ranks_.resize(n - 1);
        results_.resize(n - 1);
        auto update = [&](size_t i) {
            const MergeMap::Value v = impl_.merges.find(ids[i], ids[i + 1]);
            ranks_[i] = v.rank < 0 ? INT32_MAX : v.rank;
            results_[i] = v.id;
        };
        for (size_t i = 0; i + 1 < n; ++i) update(i);
        while (n > 1) {
            size_t best = 0;
            for (size_t i = 1; i + 1 < n; ++i) {
                if (ranks_[i] < ranks_[best]) best = i;
            }
            if (ranks_[best] == INT32_MAX) break;
            ids[best] = results_[best];
            ids.erase(ids.begin() + ptrdiff_t(best) + 1);
            ranks_.erase(ranks_.begin() + ptrdiff_t(best));
            results_.erase(results_.begin() + ptrdiff_t(best));
            --n;
            if (best > 0) update(best - 1);
            if (best + 1 < n) update(best);
        }
    }

    // The same merges with a linked list of symbols and a heap of candidate
    // pairs ordered by (rank, position): O(n log n) for long pieces. Entries
    // made stale by earlier merges are recognised by their ids and skipped.
    void merge_by_heap(std::vector<int32_t>& ids) {
        const int32_t n = int32_t(ids.size());
        if (n < 2) return;
        struct Symbol {
            int32_t id, prev, next;
        };
        struct Candidate {
            int32_t rank, left, right, left_id, right_id, merged;
            bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
        };
        std::vector<Symbol> syms(static_cast<size_t>(n));
        for (int32_t i = 0; i < n; ++i) syms[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};
        std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
        auto push = [&](int32_t left, int32_t right) {
            if (left < 0 || right < 0) return;
            const MergeMap::Value v = impl_.merges.find(syms[left].id, syms[right].id);
            if (v.rank >= 0) heap.push({v.rank, left, right, syms[left].id, syms[right].id, v.id});
        };
        for (int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);
        while (!heap.empty()) {
            const Candidate c = heap.top();
            heap.pop();
            Symbol& left = syms[c.left];
            if (left.id != c.left_id || left.next != c.right || syms[c.right].id != c.right_id) continue;
            Symbol& right = syms[c.right];
            left.id = c.merged;
            left.next = right.next;
            if (right.next >= 0) syms[right.next].prev = c.left;
            right.id = -1;
            push(left.prev, c.left);
            push(c.left, left.next);
        }
        ids.clear();
        for (int32_t i = 0; i >= 0; i = syms[i].next) ids.push_back(syms[i].id);
    }

  private:
    const Tokenizer::Impl& impl_;
    const bool parse_special_;
    std::vector<int32_t>& out_;
    PreTokenizerBuffers pre_buffers_;
    std::vector<TextSpan> spans_;
    std::vector<int32_t> symbols_, ranks_, results_;
    std::vector<CacheSlot> cache_;
    size_t bytes_seen_ = 0;
};

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && impl_->bos >= 0) out.push_back(impl_->bos);
    Encoder(*impl_, parse_special, out).encode(text);
    return out;
}

// ---------------------------------------------------------------------------
// Decoding and lookups

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
    std::string out;
    out.reserve(ids.size() * 4);
    for (int32_t id : ids) out += token_to_piece(id);
    return out;
}

const std::string& Tokenizer::token_to_piece(int32_t id) const {
    if (id < 0 || size_t(id) >= impl_->pieces.size()) {
        fail("%s: token id %d is out of range (vocabulary of %zu)", impl_->source.c_str(), id, impl_->pieces.size());
    }
    return impl_->pieces[id];
}

const std::string& Tokenizer::token_text(int32_t id) const {
    if (id < 0 || size_t(id) >= impl_->texts.size()) {
        fail("%s: token id %d is out of range (vocabulary of %zu)", impl_->source.c_str(), id, impl_->texts.size());
    }
    return impl_->texts[id];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view text) const {
    const auto it = impl_->text_to_id.find(std::string(text));
    if (it == impl_->text_to_id.end()) return std::nullopt;
    return it->second;
}

size_t Tokenizer::vocab_size() const {
    return impl_->texts.size();
}

TokenType Tokenizer::token_type(int32_t id) const {
    return (id < 0 || size_t(id) >= impl_->types.size()) ? TokenType::Undefined : impl_->types[id];
}

bool Tokenizer::is_special(int32_t id) const {
    const TokenType t = token_type(id);
    return t == TokenType::Control || t == TokenType::UserDefined;
}

bool Tokenizer::is_control(int32_t id) const {
    return token_type(id) == TokenType::Control;
}

bool Tokenizer::is_eog(int32_t id) const {
    return std::binary_search(impl_->eog.begin(), impl_->eog.end(), id);
}

int32_t Tokenizer::bos_id() const {
    return impl_->bos;
}
int32_t Tokenizer::eos_id() const {
    return impl_->eos;
}
int32_t Tokenizer::eot_id() const {
    return impl_->eot;
}
int32_t Tokenizer::pad_id() const {
    return impl_->pad;
}
bool Tokenizer::add_bos() const {
    return impl_->add_bos;
}
bool Tokenizer::add_eos() const {
    return impl_->add_eos;
}
PreTokenizerKind Tokenizer::pre_tokenizer() const {
    return impl_->pre;
}
const std::string& Tokenizer::chat_template() const {
    return impl_->chat_template;
}

// ---------------------------------------------------------------------------
// GGUF metadata

Tokenizer Tokenizer::from_metadata(const TokenizerMetadata& m, const std::string& source) {
    auto impl = std::make_shared<Impl>();
    impl->source = source;
    if (m.model != "gpt2") {
        fail("%s: tokenizer model '%s' is not supported (only byte-level BPE, \"gpt2\")", source.c_str(),
             m.model.c_str());
    }
    const auto pre = pre_tokenizer_from_gguf_name(m.pre);
    if (!pre) fail("%s: unknown pre-tokenizer '%s'", source.c_str(), m.pre.c_str());
    impl->pre = *pre;
    impl->nfc = *pre == PreTokenizerKind::Qwen2;
    impl->ignore_merges = *pre == PreTokenizerKind::Llama3;
    if (m.tokens.empty() || m.tokens.size() > size_t(INT32_MAX)) {
        fail("%s: tokenizer has %zu tokens", source.c_str(), m.tokens.size());
    }
    if (!m.token_types.empty() && m.token_types.size() != m.tokens.size()) {
        fail("%s: %zu token types for %zu tokens", source.c_str(), m.token_types.size(), m.tokens.size());
    }
    impl->texts = m.tokens;
    impl->types.assign(m.tokens.size(), TokenType::Normal);
    for (size_t id = 0; id < m.token_types.size(); ++id) {
        const int32_t t = m.token_types[id];
        if (t < 0 || t > int32_t(TokenType::Byte)) fail("%s: token %zu has unknown type %d", source.c_str(), id, t);
        impl->types[id] = TokenType(t);
        if (impl->types[id] == TokenType::Control || impl->types[id] == TokenType::UserDefined) {
            if (m.tokens[id].empty()) continue;
            AddedToken a;
            a.id = int32_t(id);
            a.content = m.tokens[id];
            a.special = impl->types[id] == TokenType::Control;
            impl->added.push_back(std::move(a));
        }
    }
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(m.merges.size());
    for (size_t i = 0; i < m.merges.size(); ++i) {
        const std::string& s = m.merges[i];
        const size_t space = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
        if (space == std::string::npos) fail("%s: merge %zu ('%s') is not two tokens", source.c_str(), i, s.c_str());
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    }
    auto check_id = [&](int32_t id, const char* what) {
        if (id >= 0 && size_t(id) >= m.tokens.size()) {
            MOELITE_LOG_WARN("%s: %s token id %d is out of range, ignored", source.c_str(), what, id);
            return -1;
        }
        return id < 0 ? -1 : id;
    };
    impl->bos = check_id(m.bos_id, "BOS");
    impl->eos = check_id(m.eos_id, "EOS");
    impl->eot = check_id(m.eot_id, "EOT");
    impl->pad = check_id(m.pad_id, "padding");
    impl->add_bos = m.add_bos.value_or(*pre == PreTokenizerKind::Llama3) && impl->bos >= 0;
    impl->add_eos = m.add_eos.value_or(false) && impl->eos >= 0;
    impl->chat_template = m.chat_template;
    impl->finalize(merges);
    return Tokenizer(std::move(impl));
}

TokenizerMetadata Tokenizer::to_metadata(size_t min_vocab_size) const {
    const Impl& im = *impl_;
    TokenizerMetadata m;
    m.model = "gpt2";
    m.pre = std::string(pre_tokenizer_gguf_name(im.pre));
    const size_t n = std::max(im.texts.size(), min_vocab_size);
    m.tokens.reserve(n);
    m.token_types.reserve(n);
    for (size_t id = 0; id < n; ++id) {
        if (id >= im.texts.size() || im.types[id] == TokenType::Unused) {
            m.tokens.push_back("[PAD" + std::to_string(id) + "]");
            m.token_types.push_back(int32_t(TokenType::Unused));
            continue;
        }
        TokenType t = im.types[id];
        if (t == TokenType::UserDefined && added_token_looks_special(im.texts[id])) t = TokenType::Control;
        m.tokens.push_back(im.texts[id]);
        m.token_types.push_back(int32_t(t));
    }
    m.merges.reserve(im.merge_pairs.size());
    for (const auto& [l, r] : im.merge_pairs) m.merges.push_back(im.texts[l] + " " + im.texts[r]);
    m.bos_id = im.bos;
    m.eos_id = im.eos;
    m.eot_id = im.eot;
    m.pad_id = im.pad;
    m.add_bos = im.add_bos;
    m.add_eos = im.add_eos;
    m.chat_template = im.chat_template;
    return m;
}

}  // namespace moelite
