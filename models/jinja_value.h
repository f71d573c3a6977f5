// Values of the Jinja interpreter (models/jinja_*), and how they print,
// compare and serialise.
//
// A value is one of: undefined, none, bool, int (int64), float (double),
// string (UTF-8 bytes), list, dict (string keys, insertion order kept, as a
// JSON object keeps its order), or callable. Lists are immutable once built
// and shared by pointer; dicts are shared by pointer and mutable (a
// `namespace()` is a dict flagged as such, and `{% set ns.x = ... %}` writes
// through every reference to it).
//
// Semantics follow Python Jinja2 as transformers sets it up (the engine chat
// templates are written for): str() of a value is Python's (True, None, 1.0,
// ['a', 1]), lengths and indices of strings count code points, `tojson` is
// json.dumps(ensure_ascii=False) with its separators. Where @huggingface/jinja
// (the fixtures' reference) is more lenient than Jinja2, the lenient
// behaviour is kept; see models/jinja_eval.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/error.h"

namespace moelite::jinja {

class Value;
class Dict;
class Renderer;
struct Callable;

using List = std::vector<Value>;
using ListPtr = std::shared_ptr<const List>;
using DictPtr = std::shared_ptr<Dict>;
using CallablePtr = std::shared_ptr<const Callable>;

// The order matches the alternatives of Value's variant.
enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Callable };

// Python's name for a kind ('NoneType', 'str', ...), for error messages.
const char* kind_name(Kind kind);

class Value {
public:
    Value() = default;  // undefined
    Value(const Value&) = default;
    Value(Value&&) noexcept = default;
    Value& operator=(const Value&) = default;
    Value& operator=(Value&&) noexcept = default;
    // Releases nested lists and dicts iteratively, so that a deeply nested
    // value (built by a loop) cannot overflow the stack when it dies.
    ~Value();

    static Value none() { return Value(Storage(std::in_place_index<1>, nullptr)); }
    static Value boolean(bool b) { return Value(Storage(std::in_place_index<2>, b)); }
    static Value integer(int64_t i) { return Value(Storage(std::in_place_index<3>, i)); }
    static Value number(double d) { return Value(Storage(std::in_place_index<4>, d)); }
    static Value string(std::string s) { return Value(Storage(std::in_place_index<5>, std::move(s))); }
    static Value list(List items) { return Value(Storage(std::in_place_index<6>, std::make_shared<const List>(std::move(items)))); }
    static Value list(ListPtr items) { return Value(Storage(std::in_place_index<6>, std::move(items))); }
    static Value dict(DictPtr d) { return Value(Storage(std::in_place_index<7>, std::move(d))); }
    static Value callable(CallablePtr c) { return Value(Storage(std::in_place_index<8>, std::move(c))); }

    Kind kind() const { return Kind(v_.index()); }
    bool is_undefined() const { return kind() == Kind::Undefined; }
    bool is_none() const { return kind() == Kind::None; }
    bool is_bool() const { return kind() == Kind::Bool; }
    bool is_int() const { return kind() == Kind::Int; }
    bool is_float() const { return kind() == Kind::Float; }
    bool is_number() const { return is_int() || is_float(); }  // bool excluded
    bool is_string() const { return kind() == Kind::String; }
    bool is_list() const { return kind() == Kind::List; }
    bool is_dict() const { return kind() == Kind::Dict; }
    bool is_callable() const { return kind() == Kind::Callable; }

    // Accessors; the kind must match (checked).
    bool as_bool() const;
    int64_t as_int() const;
    double as_float() const;  // int or float
    const std::string& as_string() const;
    const List& as_list() const;
    const ListPtr& list_ptr() const;
    Dict& as_dict() const;
    const DictPtr& dict_ptr() const;
    const Callable& as_callable() const;

private:
    friend void release_nested(Value& v);
    using Storage = std::variant<std::monostate, std::nullptr_t, bool, int64_t, double, std::string, ListPtr, DictPtr,
                                 CallablePtr>;
    explicit Value(Storage v) : v_(std::move(v)) {}
    Storage v_;
};

// A dict keeps insertion order.
class Dict {
public:
    bool is_namespace = false;

    const Value* find(std::string_view key) const;
    void set(const std::string& key, Value value);
    size_t size() const { return entries_.size(); }
    void reserve(size_t n) { entries_.reserve(n); }
    bool empty() const { return entries_.empty(); }
    const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
    // Moves every value out into `out` and empties the dict (used when it dies).
    void take_values(std::vector<Value>& out);

private:
    // Small dicts (most) are searched linearly; larger ones get a hash index.
    static constexpr size_t kIndexFrom = 12;
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::vector<std::pair<std::string, Value>> entries_;
    std::unordered_map<std::string, size_t, Hash, std::equal_to<>> index_;
};

DictPtr make_dict();

// Dict keys are strings. The other keys Python allows and templates use
// (`{4096: 512}`: int, float, bool, none) are stored under an encoded string
// ("\0" + a kind letter + text) and decoded when the key is read back.
// Lists and dicts cannot be keys (Error).
std::string dict_key(const Value& key);
Value key_value(const std::string& key);
void release_nested(Value& v);

// Arguments of a call, a filter or a test (without the operand).
struct CallArgs {
    std::vector<Value> args;
    std::vector<std::pair<std::string, Value>> kwargs;

    const Value* kwarg(std::string_view name) const;
    // The argument at `position`, else the keyword `name`, else nullptr.
    const Value* get(size_t position, std::string_view name) const;
};

using NativeFunction = std::function<Value(const CallArgs&, Renderer&)>;

struct Callable {
    std::string name;
    NativeFunction fn;
};

Value make_function(std::string name, NativeFunction fn);

// An error raised by the template itself (raise_exception): its message is the
// template's, verbatim.
class TemplateRaised : public Error {
public:
    using Error::Error;
};

// Python truthiness: undefined, none, false, 0, 0.0, '', [] and {} are false.
bool truthy(const Value& v);
// Python ==, with Jinja2's rule that undefined equals undefined.
bool equals(const Value& a, const Value& b);
// Python ordering (<0, 0, >0) of numbers, strings or lists; throws Error otherwise.
int compare(const Value& a, const Value& b);

// Python str(): '' for undefined, None, True, 1.5, strings as they are, lists
// and dicts as their repr.
std::string to_str(const Value& v);
// Python repr(): strings quoted.
std::string repr(const Value& v);
// Python's repr of a float: shortest round-trip digits, '.0' on integral
// values, exponent form outside [1e-4, 1e16).
std::string format_float(double d);
// json.dumps(v, ensure_ascii=False, indent=indent): indent < 0 means none
// (separators ', ' and ': '), otherwise newlines and ',' / ': '. Undefined
// serialises as null (as @huggingface/jinja does), a callable throws.
std::string to_json(const Value& v, int indent = -1);

// The other json.dumps arguments transformers' tojson passes through.
struct JsonOptions {
    int indent = -1;
    bool custom_separators = false;  // else ', ' / ',' and ': '
    std::string item_separator, key_separator;
    bool sort_keys = false;
    bool ensure_ascii = false;  // \uXXXX for non-ASCII (surrogate pairs above U+FFFF)
};
std::string to_json(const Value& v, const JsonOptions& options);

Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

// UTF-8 helpers: strings are indexed by code point. Invalid bytes count as
// one code point each.
std::vector<std::string_view> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);

}  // namespace moelite::jinja
