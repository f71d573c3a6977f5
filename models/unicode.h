// Unicode for the tokenizer: UTF-8 decoding that never fails, general
// categories and White_Space as fast bit flags, and NFC normalization.
//
// Conventions:
//  - Text is UTF-8 in std::string / std::string_view. Bytes that do not form a
//    valid UTF-8 sequence (overlong forms, surrogates, truncated sequences, code
//    points past U+10FFFF) are not errors: each such byte decodes to its own
//    pseudo code point kInvalidBase + byte, which has no category flags, and
//    utf8_append writes the byte back unchanged. So decode/encode round-trips
//    any byte string exactly.
//  - The data comes from the Unicode Character Database through the generated
//    models/unicode_tables.cpp (tools/gen_unicode_tables.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moelite::unicode {

// First pseudo code point used for an invalid byte b: kInvalidBase + b.
constexpr uint32_t kInvalidBase = 0x110000;

// General categories, in the order of the generated table (Cn = unassigned).
// clang-format off
enum class GeneralCategory : uint8_t {
    Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No,
    Pc, Pd, Ps, Pe, Pi, Pf, Po, Sm, Sc, Sk, So,
    Zs, Zl, Zp, Cc, Cf, Cs, Co,
};
// clang-format on

// Bit flags for one code point. A code point has at most one of the five
// category bits (\p{L}, \p{M}, \p{N}, \p{P}, \p{S}); White_Space is separate
// (\s in the tokenizers' regexes means White_Space).
enum Flag : uint8_t {
    kLetter = 1 << 0,
    kMark = 1 << 1,
    kNumber = 1 << 2,
    kPunctuation = 1 << 3,
    kSymbol = 1 << 4,
    kWhiteSpace = 1 << 5,
    kNfcQuickCheckNotYes = 1 << 6,  // NFC_QC is No or Maybe
    kNonZeroCombiningClass = 1 << 7,
};

// The flags of a code point (0 for unassigned ones and invalid bytes). A table
// lookup: built on first use (thread-safe), then O(1).
uint8_t flags(uint32_t cp);

// The table behind flags(): flags_table()[cp] for cp <= 0x10FFFF. For loops
// over many characters (saves the call and the range check).
const uint8_t* flags_table();

// Slow lookups (binary search in the generated tables), for tests and tools.
GeneralCategory general_category(uint32_t cp);
bool is_white_space(uint32_t cp);
uint8_t combining_class(uint32_t cp);

// Decodes the code point at s[0 .. n), n >= 1; *length gets the bytes used
// (1 for an invalid byte, which decodes to kInvalidBase + byte).
uint32_t utf8_decode(const char* s, size_t n, size_t* length);
// Appends cp as UTF-8 (an invalid-byte pseudo code point as its byte).
void utf8_append(std::string& out, uint32_t cp);
// True when the whole string is well-formed UTF-8.
bool utf8_is_valid(std::string_view text);

// True when NFC(text) == text is certain without running the algorithm (the
// UAX #15 quick check; "maybe" answers false). Cheap: one table lookup per
// code point, and a plain byte scan for ASCII.
bool nfc_quick_check(std::string_view text);
// The canonical composition (NFC) of text. Invalid bytes pass through as they
// are and block composition across them.
std::string nfc(std::string_view text);

}  // namespace moelite::unicode
