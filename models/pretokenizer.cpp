// Hand-written matchers for the known pre-tokenizer regexes (see pretokenizer.h).
//
// Text is first decoded into code points with their category flags; every
// stage then works on code point indices. A matcher is called at position i of
// a piece [.., n) and returns the end of the regex match starting exactly at i,
// or i when the regex does not match there; the Isolated-split driver scans
// left to right like a regex engine's find-all, so the characters no match
// covers form gap pieces.
#include "models/pretokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "models/unicode.h"

namespace moelite {

namespace {

using unicode::kLetter;
using unicode::kMark;
using unicode::kNumber;
using unicode::kPunctuation;
using unicode::kSymbol;
using unicode::kWhiteSpace;

struct CodeRange {
    uint32_t first;
    uint32_t last;
};

// The character classes written out in the DeepSeek regexes.
// deepseek-v3 [1]: CJK unified ideographs U+4E00-U+9FA5, hiragana, katakana.
constexpr CodeRange kDeepseekV3Cjk[] = {{0x4E00, 0x9FA5}, {0x3040, 0x309F}, {0x30A0, 0x30FF}};
// deepseek-llm [1]: the cased letters (Latin, Greek, Cyrillic, Armenian, ...).
constexpr CodeRange kDeepseekLlmLetters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},       {0xD8, 0xF6},
    {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},     {0x295, 0x2AF},     {0x370, 0x373},
    {0x376, 0x376},     {0x377, 0x377},     {0x37B, 0x37D},     {0x37F, 0x37F},     {0x386, 0x386},
    {0x388, 0x38A},     {0x38C, 0x38C},     {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},
    {0x48A, 0x52F},     {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},   {0x1D79, 0x1D9A},
    {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},
    {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},
    {0x1FB6, 0x1FBC},   {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},   {0x2102, 0x2102},
    {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},
    {0x2126, 0x2126},   {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},
    {0x213C, 0x213F},   {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2183},   {0x2184, 0x2184},
    {0x2C00, 0x2C7B},   {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF2},   {0x2CF3, 0x2CF3},
    {0xA640, 0xA66D},   {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},
    {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
// deepseek-llm [2]: ASCII punctuation and letters (!-/ :-~), their full-width
// forms, curly quotes, and the ideographic space, comma and full stop.
constexpr CodeRange kDeepseekLlmPunctuation[] = {{0x21, 0x2F},     {0x3A, 0x7E},     {0xFF01, 0xFF0F},
                                                 {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}};
// deepseek-llm [4]: U+4E00-U+9FA5, U+0800-U+4E00 (a wide block of scripts), Hangul.
constexpr CodeRange kDeepseekLlmCjk[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};

template <size_t N>
bool in_ranges(const CodeRange (&ranges)[N], uint32_t cp) {
    for (const CodeRange& r : ranges) {
        if (cp >= r.first && cp <= r.last) return true;
    }
    return false;
}

// The deepseek-llm letter class: ASCII directly, the rest by binary search.
bool is_deepseek_llm_letter(uint32_t cp) {
    if (cp < 0x80) return ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    const CodeRange* end = std::end(kDeepseekLlmLetters);
    const CodeRange* it = std::upper_bound(std::begin(kDeepseekLlmLetters), end, cp,
                                           [](uint32_t v, const CodeRange& r) { return v < r.first; });
    return it != std::begin(kDeepseekLlmLetters) && cp <= (it - 1)->last;
}

// A regex character class written from ranges, the way tokenizer.json has it.
template <size_t N>
std::string class_regex(const CodeRange (&ranges)[N]) {
    std::string out = "[";
    for (const CodeRange& r : ranges) {
        unicode::utf8_append(out, r.first);
        if (r.last != r.first) {
            out.push_back('-');
            unicode::utf8_append(out, r.last);
        }
    }
    out.push_back(']');
    return out;
}

const char* const kQwen2Regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kLlama3Regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kDeepseekV3MainRegex =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

// Writes literal CR and LF as the escapes \r and \n (the same regex).
std::string escape_line_breaks(std::string_view regex) {
    std::string out;
    for (char c : regex) {
        if (c == '\r') {
            out += "\\r";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// ---------------------------------------------------------------------------
// Matchers

struct CodePointView {
    const uint32_t* cp;
    const uint8_t* fl;
};

inline bool is_line_break(uint32_t c) {
    return c == '\r' || c == '\n';
}
inline bool is_ascii_alpha(uint32_t c) {
    return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
inline bool is_ascii_punctuation(uint32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}

// End of the run of characters having any of `mask`, from i.
inline size_t run_with(const CodePointView& v, size_t i, size_t n, uint8_t mask) {
    while (i < n && (v.fl[i] & mask)) ++i;
    return i;
}
// End of the run of characters having none of `mask`, from i.
inline size_t run_without(const CodePointView& v, size_t i, size_t n, uint8_t mask) {
    while (i < n && !(v.fl[i] & mask)) ++i;
    return i;
}

// The case-insensitive form of a contraction letter: ASCII lowercase, and
// U+017F LATIN SMALL LETTER LONG S, which case-folds to 's'.
inline uint32_t fold_contraction_letter(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c | 0x20;
    return c == 0x17F ? 's' : c;
}

// \s*[\r\n]+|\s+(?!\S)|\s+ at i.
inline size_t match_white_space(const CodePointView& v, size_t i, size_t n) {
    if (!(v.fl[i] & kWhiteSpace)) return i;
    size_t end = i, last_break = n;
    for (; end < n && (v.fl[end] & kWhiteSpace); ++end) {
        if (is_line_break(v.cp[end])) last_break = end;
    }
    if (last_break != n) return last_break + 1;  // \s*[\r\n]+ backtracks to the last line break
    if (end == n || end - i == 1) return end;    // \s+(?!\S) at the end, or \s+
    return end - 1;                              // \s+(?!\S) leaves the last space to the next word
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
//   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t match_gpt4_style(const CodePointView& v, size_t i, size_t n, size_t max_digits) {
    const uint32_t c = v.cp[i];
    const uint8_t f = v.fl[i];
    if (c == '\'' && i + 1 < n) {
        const uint32_t c1 = fold_contraction_letter(v.cp[i + 1]);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            const uint32_t c2 = fold_contraction_letter(v.cp[i + 2]);
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
        }
    }
    if (f & kLetter) return run_with(v, i + 1, n, kLetter);
    if (!(f & (kLetter | kNumber)) && !is_line_break(c) && i + 1 < n && (v.fl[i + 1] & kLetter)) {
        return run_with(v, i + 2, n, kLetter);
    }
    if (f & kNumber) {
        size_t end = i + 1;
        while (end < n && end - i < max_digits && (v.fl[end] & kNumber)) ++end;
        return end;
    }
    constexpr uint8_t kNotOther = kWhiteSpace | kLetter | kNumber;
    size_t j = i;
    if (c == ' ' && i + 1 < n && !(v.fl[i + 1] & kNotOther)) j = i + 1;
    if (!(v.fl[j] & kNotOther)) {
        size_t end = run_without(v, j + 1, n, kNotOther);
        while (end < n && is_line_break(v.cp[end])) ++end;
        return end;
    }
    return match_white_space(v, i, n);
}

// [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//   | ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t match_deepseek_v3_main(const CodePointView& v, size_t i, size_t n) {
    const uint32_t c = v.cp[i];
    const uint8_t f = v.fl[i];
    if (is_ascii_punctuation(c) && i + 1 < n && is_ascii_alpha(v.cp[i + 1])) {
        size_t end = i + 2;
        while (end < n && is_ascii_alpha(v.cp[end])) ++end;
        return end;
    }
    // A mark at i may be the optional prefix or the first of the run: the
    // match is the whole letter/mark run from i either way.
    constexpr uint8_t kWord = kLetter | kMark;
    if (f & kWord) return run_with(v, i + 1, n, kWord);
    if (!(f & (kLetter | kPunctuation | kSymbol)) && !is_line_break(c) && i + 1 < n && (v.fl[i + 1] & kWord)) {
        return run_with(v, i + 2, n, kWord);
    }
    constexpr uint8_t kPunct = kPunctuation | kSymbol;
    size_t j = i;
    if (c == ' ' && i + 1 < n && (v.fl[i + 1] & kPunct)) j = i + 1;
    if (v.fl[j] & kPunct) {
        size_t end = run_with(v, j + 1, n, kPunct);
        while (end < n && is_line_break(v.cp[end])) ++end;
        return end;
    }
    return match_white_space(v, i, n);
}

// \p{N}{1,max} (max 0 = unbounded).
inline size_t match_digits(const CodePointView& v, size_t i, size_t n, size_t max) {
    if (!(v.fl[i] & kNumber)) return i;
    size_t end = i + 1;
    while (end < n && (max == 0 || end - i < max) && (v.fl[end] & kNumber)) ++end;
    return end;
}

// [class]+, the class given as a predicate on code points.
template <typename InClass>
size_t match_class_run(const CodePointView& v, size_t i, size_t n, InClass&& in_class) {
    size_t end = i;
    while (end < n && in_class(v.cp[end])) ++end;
    return end;
}

// \s?[class]+
template <typename InClass>
size_t match_optional_space_class_run(const CodePointView& v, size_t i, size_t n, InClass&& in_class) {
    if ((v.fl[i] & kWhiteSpace) && i + 1 < n && in_class(v.cp[i + 1])) return match_class_run(v, i + 1, n, in_class);
    return match_class_run(v, i, n, in_class);
}

template <size_t N>
auto in(const CodeRange (&ranges)[N]) {
    return [&ranges](uint32_t cp) { return in_ranges(ranges, cp); };
}

// ---------------------------------------------------------------------------
// Isolated split

// Splits each piece of `in` by `match`, appending matches and gaps to `out`.
template <typename Matcher>
void split_isolated(const std::vector<TextSpan>& in, std::vector<TextSpan>& out, Matcher&& match) {
    out.clear();
    for (const TextSpan& piece : in) {
        const size_t n = piece.end;
        size_t gap = piece.begin;
        for (size_t i = piece.begin; i < n;) {
            const size_t end = match(i, n);
            if (end > i) {
                if (gap < i) out.push_back({uint32_t(gap), uint32_t(i)});
                out.push_back({uint32_t(i), uint32_t(end)});
                i = gap = end;
            } else {
                ++i;
            }
        }
        if (gap < n) out.push_back({uint32_t(gap), uint32_t(n)});
    }
}

// \s+$ (Isolated): the trailing white space of each piece becomes its own piece.
void split_trailing_white_space(const CodePointView& v, const std::vector<TextSpan>& in, std::vector<TextSpan>& out) {
    out.clear();
    for (const TextSpan& piece : in) {
        uint32_t start = piece.end;
        while (start > piece.begin && (v.fl[start - 1] & kWhiteSpace)) --start;
        if (start > piece.begin) out.push_back({piece.begin, start});
        if (start < piece.end) out.push_back({start, piece.end});
    }
}

}  // namespace

std::string_view pre_tokenizer_gguf_name(PreTokenizerKind kind) {
    switch (kind) {
        case PreTokenizerKind::Qwen2:
            return "qwen2";
        case PreTokenizerKind::Llama3:
            return "llama-bpe";
        case PreTokenizerKind::DeepseekV3:
            return "deepseek-v3";
        case PreTokenizerKind::DeepseekLlm:
            return "deepseek-llm";
    }
    return "";
}

std::optional<PreTokenizerKind> pre_tokenizer_from_gguf_name(std::string_view name) {
    if (name == "qwen2" || name == "deepseek-r1-qwen") return PreTokenizerKind::Qwen2;
    if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return PreTokenizerKind::Llama3;
    if (name == "deepseek-v3") return PreTokenizerKind::DeepseekV3;
    if (name == "deepseek-llm") return PreTokenizerKind::DeepseekLlm;
    return std::nullopt;
}

std::vector<std::string> pre_tokenizer_regexes(PreTokenizerKind kind) {
    switch (kind) {
        case PreTokenizerKind::Qwen2:
            return {kQwen2Regex};
        case PreTokenizerKind::Llama3:
            return {kLlama3Regex};
        case PreTokenizerKind::DeepseekV3:
            return {"\\p{N}{1,3}", class_regex(kDeepseekV3Cjk) + "+", kDeepseekV3MainRegex};
        case PreTokenizerKind::DeepseekLlm:
            return {"[\\r\\n]",
                    "\\s?" + class_regex(kDeepseekLlmLetters) + "+",
                    "\\s?" + class_regex(kDeepseekLlmPunctuation) + "+",
                    "\\s+$",
                    class_regex(kDeepseekLlmCjk) + "+",
                    "\\p{N}+"};
    }
    return {};
}

std::optional<PreTokenizerKind> pre_tokenizer_from_regexes(const std::vector<std::string>& regexes) {
    for (PreTokenizerKind kind : {PreTokenizerKind::Qwen2, PreTokenizerKind::Llama3, PreTokenizerKind::DeepseekV3,
                                  PreTokenizerKind::DeepseekLlm}) {
        const std::vector<std::string> known = pre_tokenizer_regexes(kind);
        if (known.size() != regexes.size()) continue;
        bool same = true;
        for (size_t i = 0; i < known.size() && same; ++i) {
            same = escape_line_breaks(known[i]) == escape_line_breaks(regexes[i]);
        }
        if (same) return kind;
    }
    return std::nullopt;
}

namespace {

// Pre-tokenizes one chunk of text; span offsets are relative to `base`.
void pre_tokenize_chunk(PreTokenizerKind kind, std::string_view text, uint32_t base, std::vector<TextSpan>& pieces,
                        PreTokenizerBuffers& buffers) {
    // Decode once: code points, their flags and byte offsets.
    auto& cps = buffers.code_points;
    auto& fls = buffers.flags;
    auto& offsets = buffers.offsets;
    if (cps.size() < text.size()) {
        cps.resize(text.size());
        fls.resize(text.size());
        offsets.resize(text.size() + 1);
    }
    const uint8_t* table = unicode::flags_table();
    uint32_t* cp_out = cps.data();
    uint8_t* fl_out = fls.data();
    uint32_t* offset_out = offsets.data();
    size_t count = 0;
    for (size_t i = 0; i < text.size(); ++count) {
        size_t len = 1;
        const uint8_t byte = uint8_t(text[i]);
        const uint32_t cp = byte < 0x80 ? byte : unicode::utf8_decode(text.data() + i, text.size() - i, &len);
        cp_out[count] = cp;
        fl_out[count] = cp < unicode::kInvalidBase ? table[cp] : 0;
        offset_out[count] = base + uint32_t(i);
        i += len;
    }
    offset_out[count] = base + uint32_t(text.size());
    const CodePointView v{cps.data(), fls.data()};

    auto& a = buffers.stage_a;
    auto& b = buffers.stage_b;
    a.assign(1, TextSpan{0, uint32_t(count)});
    std::vector<TextSpan>* result = &b;
    switch (kind) {
        case PreTokenizerKind::Qwen2:
            split_isolated(a, b, [&](size_t i, size_t n) { return match_gpt4_style(v, i, n, 1); });
            break;
        case PreTokenizerKind::Llama3:
            split_isolated(a, b, [&](size_t i, size_t n) { return match_gpt4_style(v, i, n, 3); });
            break;
        case PreTokenizerKind::DeepseekV3:
            split_isolated(a, b, [&](size_t i, size_t n) { return match_digits(v, i, n, 3); });
            split_isolated(b, a, [&](size_t i, size_t n) { return match_class_run(v, i, n, in(kDeepseekV3Cjk)); });
            split_isolated(a, b, [&](size_t i, size_t n) { return match_deepseek_v3_main(v, i, n); });
            break;
        case PreTokenizerKind::DeepseekLlm:
            split_isolated(a, b, [&](size_t i, size_t) { return is_line_break(v.cp[i]) ? i + 1 : i; });
            split_isolated(b, a, [&](size_t i, size_t n) {
                return match_optional_space_class_run(v, i, n, is_deepseek_llm_letter);
            });
            split_isolated(a, b, [&](size_t i, size_t n) {
                return match_optional_space_class_run(v, i, n, in(kDeepseekLlmPunctuation));
            });
            split_trailing_white_space(v, b, a);
            split_isolated(a, b, [&](size_t i, size_t n) { return match_class_run(v, i, n, in(kDeepseekLlmCjk)); });
            split_isolated(b, a, [&](size_t i, size_t n) { return match_digits(v, i, n, 0); });
            result = &a;
            break;
    }
    for (const TextSpan& s : *result) pieces.push_back({offset_out[s.begin], offset_out[s.end]});
}

}  // namespace

void pre_tokenize(PreTokenizerKind kind, std::string_view text, std::vector<TextSpan>& pieces,
                  PreTokenizerBuffers& buffers) {
    if (text.size() > UINT32_MAX) fail("pre-tokenizer: text of %zu bytes is too long (4 GiB at most)", text.size());
    // Long texts go in chunks that end after a line break followed by an ASCII
    // letter: no match of any family's regexes spans such a point (nothing
    // continues past [\r\n], and nothing that takes a letter may start with a
    // line break), so the pieces are the same, and the working memory stays
    // small and in cache.
    constexpr size_t kChunk = 32 * 1024;
    size_t start = 0;
    while (text.size() - start > 2 * kChunk) {
        size_t cut = start + kChunk;
        while (cut < text.size() &&
               !(text[cut - 1] == '\n' && ((text[cut] | 0x20) >= 'a' && (text[cut] | 0x20) <= 'z'))) {
            ++cut;
        }
        if (cut >= text.size()) break;
        pre_tokenize_chunk(kind, text.substr(start, cut - start), uint32_t(start), pieces, buffers);
        start = cut;
    }
    if (start < text.size()) pre_tokenize_chunk(kind, text.substr(start), uint32_t(start), pieces, buffers);
}

}  // namespace moelite
