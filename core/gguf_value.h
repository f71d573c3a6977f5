// GGUF metadata values: the thirteen value types of the format and one class,
// GgufValue, that holds a scalar, a string, or an array of any non-array type.
// Shared by the reader (core/gguf.h) and the writer (core/gguf_writer.h).
//
// Conventions:
//  - GgufType's values are the ids the format uses on disk;
//  - a value owns its data (strings and arrays are copied out of the file:
//    metadata is small next to the weights, and owned values are what the
//    writer needs too);
//  - nested arrays (an array whose elements are arrays) are legal in the GGUF
//    specification, but llama.cpp neither reads nor writes them and no model
//    uses them, so moelite rejects them on read and cannot express them on
//    write;
//  - bools are one byte on disk; any non-zero byte reads as true.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace moelite {

enum class GgufType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};

inline constexpr uint32_t kGgufTypeCount = 13;

// "u8", "i32", "f32", "bool", "string", "array", ... (the names `moelite info` prints).
const char* gguf_type_name(GgufType type);
// Bytes one element takes on disk; 0 for String and Array (variable length).
size_t gguf_type_size(GgufType type);
bool gguf_type_is_integer(GgufType type);

// An array's elements: one std::vector per element type, at the index of
// that type's id (index 9, Array, is unused: arrays do not nest).
using GgufArrayData = std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
                                   std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>,
                                   std::vector<float>, std::vector<bool>, std::vector<std::string>, std::monostate,
                                   std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>>;

struct GgufArray {
    GgufArrayData items;
};

namespace detail {
// The scalar C++ types, in the order of their GgufType ids (9 is the array).
using GgufScalarVariant = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                                       GgufArray, uint64_t, int64_t, double>;

template <class T, class V, size_t I = 0>
constexpr size_t variant_index_of() {
    if constexpr (I >= std::variant_size_v<V>) {
        return size_t(-1);
    } else if constexpr (std::is_same_v<std::variant_alternative_t<I, V>, T>) {
        return I;
    } else {
        return variant_index_of<T, V, I + 1>();
    }
}
}  // namespace detail

// True for the C++ types that map one to one onto a GGUF element type.
template <class T>
inline constexpr bool kIsGgufElement =
    !std::is_same_v<T, GgufArray> && detail::variant_index_of<T, detail::GgufScalarVariant>() != size_t(-1);

// The GgufType of element type T (uint32_t -> U32, std::string -> String, ...).
template <class T>
constexpr GgufType gguf_type_of() {
    static_assert(kIsGgufElement<T>, "not a GGUF element type");
    return GgufType(detail::variant_index_of<T, detail::GgufScalarVariant>());
}

class GgufValue {
public:
    GgufValue() : v_(uint8_t(0)) {}

    // Scalars: the C++ type picks the GGUF type exactly (pass uint32_t(5), not 5).
    template <class T, std::enable_if_t<kIsGgufElement<T> && !std::is_same_v<T, std::string>, int> = 0>
    explicit GgufValue(T v) : v_(v) {}
    explicit GgufValue(std::string s) : v_(std::move(s)) {}
    explicit GgufValue(std::string_view s) : v_(std::string(s)) {}
    explicit GgufValue(const char* s) : v_(std::string(s)) {}

    // Arrays of any element type, strings included.
    template <class T, std::enable_if_t<kIsGgufElement<T>, int> = 0>
    explicit GgufValue(std::vector<T> items) : v_(GgufArray{GgufArrayData(std::move(items))}) {}
    explicit GgufValue(GgufArray array) : v_(std::move(array)) {}

    GgufType type() const { return GgufType(v_.index()); }
    bool is_array() const { return type() == GgufType::Array; }
    // The element type of an array (its own type for a scalar).
    GgufType element_type() const;
    // Number of elements of an array (1 for a scalar).
    size_t size() const;

    // The scalar of exactly type T, or nullptr.
    template <class T>
    const T* get_if() const {
        static_assert(kIsGgufElement<T>, "not a GGUF element type");
        return std::get_if<T>(&v_);
    }
    // The array with elements of exactly type T, or nullptr.
    template <class T>
    const std::vector<T>* array_if() const {
        static_assert(kIsGgufElement<T>, "not a GGUF element type");
        const GgufArray* a = std::get_if<GgufArray>(&v_);
        return a ? std::get_if<std::vector<T>>(&a->items) : nullptr;
    }
    const GgufArray* array() const { return std::get_if<GgufArray>(&v_); }
    // Calls fn with the held scalar (uint8_t ... double, std::string) or GgufArray.
    template <class Fn>
    decltype(auto) visit(Fn&& fn) const {
        return std::visit(std::forward<Fn>(fn), v_);
    }

    // Integer scalars of any width, when the value fits the requested type.
    std::optional<uint64_t> as_u64() const;
    std::optional<int64_t> as_i64() const;
    // Any numeric scalar (integers and floats), converted to double.
    std::optional<double> as_f64() const;

    // Element i of an array (or the scalar itself for i == 0) as a value.
    GgufValue element(size_t i) const;

    bool operator==(const GgufValue& other) const;
    bool operator!=(const GgufValue& other) const { return !(*this == other); }

    // Human-readable: numbers as numbers, strings quoted and escaped and cut
    // to `max_chars` characters (with a note of the full length), arrays as
    // "[string x 32000] "a", "b", ..." showing at most `max_items` elements.
    std::string to_string(size_t max_items = 8, size_t max_chars = 80) const;

private:
    detail::GgufScalarVariant v_;
};

// A string quoted and escaped for printing (control characters and '"' and
// '\' escaped; other bytes as they are), cut at max_chars bytes of input.
std::string gguf_quote_string(std::string_view s, size_t max_chars);
// A key or name from a file, safe to put in a message: unchanged when it is
// short and has no control characters, else escaped and cut ("...").
std::string gguf_printable(std::string_view s, size_t max_chars = 96);

struct GgufKV {
    std::string key;
    GgufValue value;
};

}  // namespace moelite
