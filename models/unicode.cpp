// Unicode lookups and NFC over the generated UCD tables (see unicode.h).
#include "models/unicode.h"

#include <algorithm>
#include <vector>

#include "models/unicode_tables.h"

namespace moelite::unicode {

namespace tables = moelite::unicode_tables;

namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// Hangul syllable composition constants (The Unicode Standard, section 3.12).
constexpr uint32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161, kHangulTBase = 0x11A7;
constexpr uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr uint32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

uint8_t category_flags(GeneralCategory c) {
    switch (c) {
        case GeneralCategory::Lu:
        case GeneralCategory::Ll:
        case GeneralCategory::Lt:
        case GeneralCategory::Lm:
        case GeneralCategory::Lo:
            return kLetter;
        case GeneralCategory::Mn:
        case GeneralCategory::Mc:
        case GeneralCategory::Me:
            return kMark;
        case GeneralCategory::Nd:
        case GeneralCategory::Nl:
        case GeneralCategory::No:
            return kNumber;
        case GeneralCategory::Pc:
        case GeneralCategory::Pd:
        case GeneralCategory::Ps:
        case GeneralCategory::Pe:
        case GeneralCategory::Pi:
        case GeneralCategory::Pf:
        case GeneralCategory::Po:
            return kPunctuation;
        case GeneralCategory::Sm:
        case GeneralCategory::Sc:
        case GeneralCategory::Sk:
        case GeneralCategory::So:
            return kSymbol;
        default:
            return 0;
    }
}

// One byte per code point: 1.1 MB, built once. Faster than any search, and the
// tokenizer asks for every character of its input.
const std::vector<uint8_t>& flag_table() {
    static const std::vector<uint8_t> table = [] {
        std::vector<uint8_t> t(kMaxCodePoint + 1, 0);
        for (size_t i = 0; i < tables::category_ranges_count; ++i) {
            const auto& r = tables::category_ranges[i];
            const uint8_t f = category_flags(GeneralCategory(r.category));
            for (uint32_t cp = r.first; cp <= r.last; ++cp) t[cp] |= f;
        }
        for (size_t i = 0; i < tables::white_space_ranges_count; ++i) {
            const auto& r = tables::white_space_ranges[i];
            for (uint32_t cp = r.first; cp <= r.last; ++cp) t[cp] |= kWhiteSpace;
        }
        for (size_t i = 0; i < tables::nfc_quick_check_ranges_count; ++i) {
            const auto& r = tables::nfc_quick_check_ranges[i];
            for (uint32_t cp = r.first; cp <= r.last; ++cp) t[cp] |= kNfcQuickCheckNotYes;
        }
        for (size_t i = 0; i < tables::combining_class_ranges_count; ++i) {
            const auto& r = tables::combining_class_ranges[i];
            for (uint32_t cp = r.first; cp <= r.last; ++cp) t[cp] |= kNonZeroCombiningClass;
        }
        return t;
    }();
    return table;
}

// Index of the range holding cp in a table of ranges sorted by .first, or -1.
template <typename Range>
ptrdiff_t find_range(const Range* ranges, size_t count, uint32_t cp) {
    const Range* end = ranges + count;
    const Range* it = std::upper_bound(ranges, end, cp, [](uint32_t v, const Range& r) { return v < r.first; });
    if (it == ranges) return -1;
    --it;
    return cp <= it->last ? it - ranges : -1;
}

// The full canonical decomposition of cp appended to out (cp itself if none).
void decompose(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp >= kHangulSBase && cp < kHangulSBase + kHangulSCount) {
        const uint32_t s = cp - kHangulSBase;
        out.push_back(kHangulLBase + s / kHangulNCount);
        out.push_back(kHangulVBase + (s % kHangulNCount) / kHangulTCount);
        if (s % kHangulTCount != 0) out.push_back(kHangulTBase + s % kHangulTCount);
        return;
    }
    const auto* begin = tables::decompositions;
    const auto* end = begin + tables::decompositions_count;
    const auto* it =
        std::lower_bound(begin, end, cp, [](const tables::Decomposition& d, uint32_t v) { return d.code_point < v; });
    if (it == end || it->code_point != cp) {
        out.push_back(cp);
        return;
    }
    for (uint8_t i = 0; i < it->length; ++i) out.push_back(tables::decomposition_pool[it->offset + i]);
}

// The primary composite of (first, second), or 0 when there is none.
uint32_t compose(uint32_t first, uint32_t second) {
    if (first >= kHangulLBase && first < kHangulLBase + kHangulLCount && second >= kHangulVBase &&
        second < kHangulVBase + kHangulVCount) {
        return kHangulSBase + ((first - kHangulLBase) * kHangulVCount + (second - kHangulVBase)) * kHangulTCount;
    }
    if (first >= kHangulSBase && first < kHangulSBase + kHangulSCount && (first - kHangulSBase) % kHangulTCount == 0 &&
        second > kHangulTBase && second < kHangulTBase + kHangulTCount) {
        return first + (second - kHangulTBase);
    }
    if (first > kMaxCodePoint || second > kMaxCodePoint) return 0;
    const uint64_t key = (uint64_t(first) << 21) | second;
    const auto* begin = tables::compositions;
    const auto* end = begin + tables::compositions_count;
    const auto* it =
        std::lower_bound(begin, end, key, [](const tables::Composition& c, uint64_t v) { return c.pair < v; });
    return (it != end && it->pair == key) ? it->composite : 0;
}

}  // namespace

uint8_t flags(uint32_t cp) {
    if (cp > kMaxCodePoint) return 0;
    return flag_table()[cp];
}

const uint8_t* flags_table() {
    return flag_table().data();
}

GeneralCategory general_category(uint32_t cp) {
    const ptrdiff_t i = find_range(tables::category_ranges, tables::category_ranges_count, cp);
    return i < 0 ? GeneralCategory::Cn : GeneralCategory(tables::category_ranges[i].category);
}

bool is_white_space(uint32_t cp) {
    return find_range(tables::white_space_ranges, tables::white_space_ranges_count, cp) >= 0;
}

uint8_t combining_class(uint32_t cp) {
    const ptrdiff_t i = find_range(tables::combining_class_ranges, tables::combining_class_ranges_count, cp);
    return i < 0 ? 0 : tables::combining_class_ranges[i].combining_class;
}

uint32_t utf8_decode(const char* s, size_t n, size_t* length) {
    const auto* u = reinterpret_cast<const uint8_t*>(s);
    const uint8_t b0 = u[0];
    *length = 1;
    if (b0 < 0x80) return b0;
    size_t need;
    uint32_t cp, min;
    if ((b0 & 0xE0) == 0xC0) {
        need = 1, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        need = 2, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        need = 3, cp = b0 & 0x07, min = 0x10000;
    } else {
        return kInvalidBase + b0;
    }
    if (n < need + 1) return kInvalidBase + b0;
    for (size_t i = 1; i <= need; ++i) {
        if ((u[i] & 0xC0) != 0x80) return kInvalidBase + b0;
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    if (cp < min || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalidBase + b0;
    *length = need + 1;
    return cp;
}

void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(char(cp));
    } else if (cp < 0x800) {
        out.push_back(char(0xC0 | (cp >> 6)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(char(0xE0 | (cp >> 12)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp <= kMaxCodePoint) {
        out.push_back(char(0xF0 | (cp >> 18)));
        out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp >= kInvalidBase && cp < kInvalidBase + 256) {
        out.push_back(char(cp - kInvalidBase));
    }
}

bool utf8_is_valid(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        size_t len;
        if (utf8_decode(text.data() + i, text.size() - i, &len) >= kInvalidBase) return false;
        i += len;
    }
    return true;
}

bool nfc_quick_check(std::string_view text) {
    const std::vector<uint8_t>& table = flag_table();
    uint8_t last_class = 0;
    for (size_t i = 0; i < text.size();) {
        if (uint8_t(text[i]) < 0x80) {
            last_class = 0;
            ++i;
            continue;
        }
        size_t len;
        const uint32_t cp = utf8_decode(text.data() + i, text.size() - i, &len);
        i += len;
        if (cp > kMaxCodePoint) {
            last_class = 0;
            continue;
        }
        const uint8_t f = table[cp];
        if (f & kNfcQuickCheckNotYes) return false;
        const uint8_t cls = (f & kNonZeroCombiningClass) ? combining_class(cp) : 0;
        if (cls != 0 && cls < last_class) return false;
        last_class = cls;
    }
    return true;
}

namespace {

// NFC of a whole segment: decompose, reorder, compose.
std::string nfc_segment(std::string_view text) {
    // Decompose canonically.
    std::vector<uint32_t> cps;
    cps.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        size_t len;
        const uint32_t cp = utf8_decode(text.data() + i, text.size() - i, &len);
        i += len;
        decompose(cp, cps);
    }
    std::vector<uint8_t> classes(cps.size());
    for (size_t i = 0; i < cps.size(); ++i) {
        classes[i] = (flags(cps[i]) & kNonZeroCombiningClass) ? combining_class(cps[i]) : 0;
    }
    // Canonical ordering: a stable sort by combining class of each run of
    // non-starters (insertion sort: the runs are short).
    for (size_t i = 1; i < cps.size(); ++i) {
        if (classes[i] == 0) continue;
        for (size_t j = i; j > 0 && classes[j - 1] > classes[j]; --j) {
            std::swap(classes[j - 1], classes[j]);
            std::swap(cps[j - 1], cps[j]);
        }
    }
    // Canonical composition: each character joins the last starter unless a
    // character in between blocks it (class 0, or a class >= its own).
    size_t out = 0;
    ptrdiff_t starter = -1;
    uint8_t last_class = 0;  // class of the last character kept after the starter
    for (size_t i = 0; i < cps.size(); ++i) {
        const uint32_t cp = cps[i];
        const uint8_t cls = classes[i];
        if (starter >= 0) {
            const bool adjacent = size_t(starter) + 1 == out;
            if (adjacent || (last_class != 0 && last_class < cls)) {
                if (const uint32_t composite = compose(cps[starter], cp); composite != 0) {
                    cps[starter] = composite;
                    continue;
                }
            }
        }
        if (cls == 0) {
            starter = ptrdiff_t(out);
            last_class = 0;
        } else {
            last_class = cls;
        }
        cps[out] = cp;
        classes[out] = cls;
        ++out;
    }
    std::string result;
    result.reserve(text.size());
    for (size_t i = 0; i < out; ++i) utf8_append(result, cps[i]);
    return result;
}

}  // namespace

// Only the stretches around code points that are not "stable" (a starter whose
// NFC_QC is Yes) can change; each runs from the last stable code point before
// to the next one after, and is normalized alone. The rest is copied.
std::string nfc(std::string_view text) {
    const std::vector<uint8_t>& table = flag_table();
    auto stable_at = [&](size_t i, size_t* len) {
        if (uint8_t(text[i]) < 0x80) {
            *len = 1;
            return true;
        }
        const uint32_t cp = utf8_decode(text.data() + i, text.size() - i, len);
        return cp > kMaxCodePoint || !(table[cp] & (kNfcQuickCheckNotYes | kNonZeroCombiningClass));
    };
    std::string out;
    out.reserve(text.size());
    size_t copied = 0, boundary = 0, len;
    for (size_t i = 0; i < text.size();) {
        if (stable_at(i, &len)) {
            boundary = i;
            i += len;
            continue;
        }
        size_t end = i + len;
        while (end < text.size() && !stable_at(end, &len)) end += len;
        out.append(text.substr(copied, boundary - copied));
        out += nfc_segment(text.substr(boundary, end - boundary));
        copied = boundary = i = end;
    }
    out.append(text.substr(copied));
    return out;
}

}  // namespace moelite::unicode
