// GgufValue: type names, conversions, comparison and printing.
#include "core/gguf_value.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace moelite {
namespace {

struct TypeRow {
    const char* name;
    size_t size;
};

constexpr TypeRow kTypeRows[kGgufTypeCount] = {
    {"u8", 1},   {"i8", 1},     {"u16", 2},   {"i16", 2}, {"u32", 4}, {"i32", 4}, {"f32", 4},
    {"bool", 1}, {"string", 0}, {"array", 0}, {"u64", 8}, {"i64", 8}, {"f64", 8},
};

template <class T>
std::string element_to_string(const T& v, size_t max_chars) {
    if constexpr (std::is_same_v<T, std::string>) {
        return gguf_quote_string(v, max_chars);
    } else if constexpr (std::is_same_v<T, bool>) {
        return v ? "true" : "false";
    } else if constexpr (std::is_floating_point_v<T>) {
        // the shortest text that reads back as the same value
        char buf[64];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        return std::string(buf, r.ptr);
    } else if constexpr (std::is_signed_v<T>) {
        return std::to_string(int64_t(v));
    } else {
        return std::to_string(uint64_t(v));
    }
}

// Floats compared by bit pattern: NaN equals the same NaN, 0.0 differs from -0.0.
bool same_bits(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }
bool same_bits(double a, double b) { return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b); }

}  // namespace

const char* gguf_type_name(GgufType type) {
    const uint32_t id = uint32_t(type);
    return id < kGgufTypeCount ? kTypeRows[id].name : "?";
}

size_t gguf_type_size(GgufType type) {
    const uint32_t id = uint32_t(type);
    return id < kGgufTypeCount ? kTypeRows[id].size : 0;
}

bool gguf_type_is_integer(GgufType type) {
    switch (type) {
        case GgufType::U8:
        case GgufType::I8:
        case GgufType::U16:
        case GgufType::I16:
        case GgufType::U32:
        case GgufType::I32:
        case GgufType::U64:
        case GgufType::I64:
            return true;
        default:
            return false;
    }
}

GgufType GgufValue::element_type() const {
    if (const GgufArray* a = array()) return GgufType(a->items.index());
    return type();
}

size_t GgufValue::size() const {
    if (const GgufArray* a = array()) {
        return std::visit(
            [](const auto& items) -> size_t {
                if constexpr (std::is_same_v<std::decay_t<decltype(items)>, std::monostate>) {
                    return 0;
                } else {
                    return items.size();
                }
            },
            a->items);
    }
    return 1;
}

std::optional<uint64_t> GgufValue::as_u64() const {
    return std::visit(
        [](const auto& v) -> std::optional<uint64_t> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
                if constexpr (std::is_signed_v<T>) {
                    if (v < 0) return std::nullopt;
                }
                return uint64_t(v);
            } else {
                return std::nullopt;
            }
        },
        v_);
}

std::optional<int64_t> GgufValue::as_i64() const {
    return std::visit(
        [](const auto& v) -> std::optional<int64_t> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, uint64_t>) {
                if (v > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
                return int64_t(v);
            } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
                return int64_t(v);
            } else {
                return std::nullopt;
            }
        },
        v_);
}

std::optional<double> GgufValue::as_f64() const {
    return std::visit(
        [](const auto& v) -> std::optional<double> {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
                return double(v);
            } else {
                return std::nullopt;
            }
        },
        v_);
}

GgufValue GgufValue::element(size_t i) const {
    const GgufArray* a = array();
    if (!a) {
        MOELITE_ASSERT(i == 0);
        return *this;
    }
    return std::visit(
        [i](const auto& items) -> GgufValue {
            if constexpr (std::is_same_v<std::decay_t<decltype(items)>, std::monostate>) {
                MOELITE_ASSERT_MSG(false, "empty array variant");
                return GgufValue();
            } else {
                MOELITE_ASSERT(i < items.size());
                using T = typename std::decay_t<decltype(items)>::value_type;
                return GgufValue(T(items[i]));
            }
        },
        a->items);
}

bool GgufValue::operator==(const GgufValue& other) const {
    if (v_.index() != other.v_.index()) return false;
    if (const GgufArray* a = array()) {
        // Floats compare by bit pattern so that NaNs round-trip as equal.
        return std::visit(
            [&](const auto& items) -> bool {
                using V = std::decay_t<decltype(items)>;
                const V* b = std::get_if<V>(&other.array()->items);
                if (!b) return false;
                if constexpr (std::is_same_v<V, std::vector<float>> || std::is_same_v<V, std::vector<double>>) {
                    if (items.size() != b->size()) return false;
                    for (size_t i = 0; i < items.size(); ++i)
                        if (!same_bits(items[i], (*b)[i])) return false;
                    return true;
                } else {
                    return items == *b;
                }
            },
            a->items);
    }
    return std::visit(
        [&](const auto& v) -> bool {
            using T = std::decay_t<decltype(v)>;
            const T& w = std::get<T>(other.v_);
            if constexpr (std::is_floating_point_v<T>) {
                return same_bits(v, w);
            } else if constexpr (std::is_same_v<T, GgufArray>) {
                return false;  // handled above
            } else {
                return v == w;
            }
        },
        v_);
}

namespace {

void append_escaped(std::string& out, std::string_view s, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out += strprintf("\\x%02x", c);
                } else {
                    out += char(c);
                }
        }
    }
}

}  // namespace

std::string gguf_quote_string(std::string_view s, size_t max_chars) {
    const size_t n = std::min(s.size(), max_chars);
    std::string out = "\"";
    append_escaped(out, s, n);
    out += '"';
    if (n < s.size()) out += strprintf("... (%zu bytes)", s.size());
    return out;
}

std::string gguf_printable(std::string_view s, size_t max_chars) {
    bool plain = s.size() <= max_chars;
    for (size_t i = 0; i < s.size() && plain; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        plain = c >= 0x20 && c != 0x7f;
    }
    if (plain) return std::string(s);
    std::string out;
    append_escaped(out, s, std::min(s.size(), max_chars));
    if (s.size() > max_chars) out += "...";
    return out;
}

std::string GgufValue::to_string(size_t max_items, size_t max_chars) const {
    if (const GgufArray* a = array()) {
        const size_t n = size();
        std::string out = strprintf("[%s x %zu]", gguf_type_name(element_type()), n);
        std::visit(
            [&](const auto& items) {
                if constexpr (!std::is_same_v<std::decay_t<decltype(items)>, std::monostate>) {
                    using T = typename std::decay_t<decltype(items)>::value_type;
                    const size_t shown = std::min(n, max_items);
                    for (size_t i = 0; i < shown; ++i) {
                        out += i ? ", " : " ";
                        out += element_to_string(T(items[i]), max_chars);
                    }
                    if (shown < n) out += ", ...";
                }
            },
            a->items);
        return out;
    }
    return std::visit(
        [&](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, GgufArray>) {
                return std::string();  // handled above
            } else {
                return element_to_string(v, max_chars);
            }
        },
        v_);
}

}  // namespace moelite
