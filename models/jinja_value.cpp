// Jinja values: accessors, Python-style printing and comparison, JSON in and out.
#include "models/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

namespace moelite::jinja {

const char* kind_name(Kind kind) {
    switch (kind) {
        case Kind::Undefined: return "undefined";
        case Kind::None: return "NoneType";
        case Kind::Bool: return "bool";
        case Kind::Int: return "int";
        case Kind::Float: return "float";
        case Kind::String: return "str";
        case Kind::List: return "list";
        case Kind::Dict: return "dict";
        case Kind::Callable: return "function";
    }
    return "?";
}

// Moves the children of every container that only `v` owns into a work list,
// and lets them die from there, one level at a time.
void release_nested(Value& v) {
    std::vector<Value> pending;
    auto nested = [](const Value& x) { return x.is_list() || x.is_dict(); };
    auto take_children = [&](Value& x) {
        if (auto* l = std::get_if<ListPtr>(&x.v_); l && *l && l->use_count() == 1) {
            auto& items = const_cast<List&>(**l);  // sole owner: nobody else can see the change
            if (std::none_of(items.begin(), items.end(), nested)) return;  // dies in one step anyway
            for (Value& item : items) pending.push_back(std::move(item));
            items.clear();
        } else if (auto* d = std::get_if<DictPtr>(&x.v_); d && *d && d->use_count() == 1) {
            const auto& entries = (*d)->entries();
            if (std::none_of(entries.begin(), entries.end(), [&](const auto& e) { return nested(e.second); })) return;
            (*d)->take_values(pending);
        }
    };
    take_children(v);
    while (!pending.empty()) {
        Value x = std::move(pending.back());
        pending.pop_back();
        take_children(x);
    }  // x dies here with no nested children left
}

Value::~Value() {
    if (v_.index() == 6 || v_.index() == 7) release_nested(*this);
}

bool Value::as_bool() const {
    MOELITE_ASSERT(is_bool());
    return std::get<2>(v_);
}
int64_t Value::as_int() const {
    if (is_bool()) return std::get<2>(v_) ? 1 : 0;
    MOELITE_ASSERT(is_int());
    return std::get<3>(v_);
}
double Value::as_float() const {
    if (is_float()) return std::get<4>(v_);
    return double(as_int());
}
const std::string& Value::as_string() const {
    MOELITE_ASSERT(is_string());
    return std::get<5>(v_);
}
const List& Value::as_list() const {
    MOELITE_ASSERT(is_list());
    return *std::get<6>(v_);
}
const ListPtr& Value::list_ptr() const {
    MOELITE_ASSERT(is_list());
    return std::get<6>(v_);
}
Dict& Value::as_dict() const {
    MOELITE_ASSERT(is_dict());
    return *std::get<7>(v_);
}
const DictPtr& Value::dict_ptr() const {
    MOELITE_ASSERT(is_dict());
    return std::get<7>(v_);
}
const Callable& Value::as_callable() const {
    MOELITE_ASSERT(is_callable());
    return *std::get<8>(v_);
}

const Value* Dict::find(std::string_view key) const {
    if (index_.empty()) {
        for (const auto& entry : entries_)
            if (entry.first == key) return &entry.second;
        return nullptr;
    }
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void Dict::set(const std::string& key, Value value) {
    if (const Value* existing = find(key)) {
        *const_cast<Value*>(existing) = std::move(value);
        return;
    }
    entries_.emplace_back(key, std::move(value));
    if (!index_.empty()) {
        index_.emplace(entries_.back().first, entries_.size() - 1);
    } else if (entries_.size() > kIndexFrom) {
        for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first, i);
    }
}

void Dict::take_values(std::vector<Value>& out) {
    for (auto& entry : entries_) out.push_back(std::move(entry.second));
    entries_.clear();
    index_.clear();
}

DictPtr make_dict() { return std::make_shared<Dict>(); }

std::string dict_key(const Value& key) {
    using namespace std::string_literals;
    switch (key.kind()) {
        case Kind::String: return key.as_string();
        case Kind::Bool:  // True == 1 in Python, so they are one key
        case Kind::Int: return "\0i"s + std::to_string(key.as_int());
        case Kind::Float: {
            double d = key.as_float();
            if (d == std::floor(d) && std::fabs(d) < 9.2e18) return "\0i"s + std::to_string(int64_t(d));
            return "\0f"s + format_float(d);
        }
        case Kind::None: return "\0n"s;
        default: fail("unhashable type: '%s'", kind_name(key.kind()));
    }
}

Value key_value(const std::string& key) {
    if (key.size() < 2 || key[0] != '\0') return Value::string(key);
    switch (key[1]) {
        case 'i': return Value::integer(std::strtoll(key.c_str() + 2, nullptr, 10));
        case 'f': return Value::number(std::strtod(key.c_str() + 2, nullptr));
        case 'n': return Value::none();
        default: return Value::string(key);
    }
}

const Value* CallArgs::kwarg(std::string_view name) const {
    for (const auto& [k, v] : kwargs)
        if (k == name) return &v;
    return nullptr;
}

const Value* CallArgs::get(size_t position, std::string_view name) const {
    if (position < args.size()) return &args[position];
    return kwarg(name);
}

Value make_function(std::string name, NativeFunction fn) {
    return Value::callable(std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)}));
}

bool truthy(const Value& v) {
    switch (v.kind()) {
        case Kind::Undefined:
        case Kind::None: return false;
        case Kind::Bool: return v.as_bool();
        case Kind::Int: return v.as_int() != 0;
        case Kind::Float: return v.as_float() != 0.0;
        case Kind::String: return !v.as_string().empty();
        case Kind::List: return !v.as_list().empty();
        case Kind::Dict: return !v.as_dict().empty();
        case Kind::Callable: return true;
    }
    return false;
}

namespace {

bool is_numeric(const Value& v) { return v.is_int() || v.is_float() || v.is_bool(); }

constexpr int kMaxValueDepth = 512;  // for printing, comparing and serialising nested values

bool equals_at(const Value& a, const Value& b, int depth);
int compare_at(const Value& a, const Value& b, int depth);

}  // namespace

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }
int compare(const Value& a, const Value& b) { return compare_at(a, b, 0); }

namespace {

bool equals_at(const Value& a, const Value& b, int depth) {
    if (depth > kMaxValueDepth) fail("value nested too deeply to compare");
    if (is_numeric(a) && is_numeric(b)) {
        if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
        return a.as_int() == b.as_int();
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Kind::Undefined:
        case Kind::None: return true;
        case Kind::String: return a.as_string() == b.as_string();
        case Kind::List: {
            const List& x = a.as_list();
            const List& y = b.as_list();
            if (x.size() != y.size()) return false;
            for (size_t i = 0; i < x.size(); ++i)
                if (!equals_at(x[i], y[i], depth + 1)) return false;
            return true;
        }
        case Kind::Dict: {
            const Dict& x = a.as_dict();
            const Dict& y = b.as_dict();
            if (x.size() != y.size()) return false;
            for (const auto& [k, v] : x.entries()) {
                const Value* w = y.find(k);
                if (!w || !equals_at(v, *w, depth + 1)) return false;
            }
            return true;
        }
        case Kind::Callable: return &a.as_callable() == &b.as_callable();
        default: return false;
    }
}

int compare_at(const Value& a, const Value& b, int depth) {
    if (depth > kMaxValueDepth) fail("value nested too deeply to compare");
    if (is_numeric(a) && is_numeric(b)) {
        if (a.is_float() || b.is_float()) {
            double x = a.as_float(), y = b.as_float();
            return x < y ? -1 : (x > y ? 1 : 0);
        }
        int64_t x = a.as_int(), y = b.as_int();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (a.is_string() && b.is_string()) {
        int c = a.as_string().compare(b.as_string());  // bytes of UTF-8 order as code points do
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (a.is_list() && b.is_list()) {
        const List& x = a.as_list();
        const List& y = b.as_list();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (equals_at(x[i], y[i], depth + 1)) continue;
            return compare_at(x[i], y[i], depth + 1);
        }
        return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
    }
    fail("'<' not supported between instances of '%s' and '%s'", kind_name(a.kind()), kind_name(b.kind()));
}

}  // namespace

std::string format_float(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    if (d == 0.0) return std::signbit(d) ? "-0.0" : "0.0";
    // Shortest round-trip digits in scientific form, then laid out as Python's repr does.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);
    bool negative = sci[0] == '-';
    if (negative) sci.erase(0, 1);
    size_t e = sci.find('e');
    std::string digits = sci.substr(0, e);
    digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
    int exp10 = std::stoi(sci.substr(e + 1));
    std::string out = negative ? "-" : "";
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out += "0." + std::string(size_t(-exp10 - 1), '0') + digits;
        } else if (size_t(exp10) + 1 >= digits.size()) {
            out += digits + std::string(size_t(exp10) + 1 - digits.size(), '0') + ".0";
        } else {
            out += digits.substr(0, size_t(exp10) + 1) + "." + digits.substr(size_t(exp10) + 1);
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += exp10 < 0 ? "e-" : "e+";
    int a = exp10 < 0 ? -exp10 : exp10;
    if (a < 10) out += "0";
    out += std::to_string(a);
    return out;
}

namespace {

void append_py_string_repr(std::string& out, const std::string& s) {
    char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    out += quote;
    for (unsigned char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == quote) (out += '\\') += char(c);
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) out += strprintf("\\x%02x", c);
        else out += char(c);
    }
    out += quote;
}

void append_repr(std::string& out, const Value& v, bool top, int depth) {
    if (depth > kMaxValueDepth) fail("value nested too deeply to print");
    switch (v.kind()) {
        case Kind::Undefined:
            if (!top) out += "Undefined";  // as Python prints it inside a list
            break;
        case Kind::None: out += "None"; break;
        case Kind::Bool: out += v.as_bool() ? "True" : "False"; break;
        case Kind::Int: out += std::to_string(v.as_int()); break;
        case Kind::Float: out += format_float(v.as_float()); break;
        case Kind::String:
            if (top) out += v.as_string();
            else append_py_string_repr(out, v.as_string());
            break;
        case Kind::List: {
            out += '[';
            bool first = true;
            for (const Value& x : v.as_list()) {
                if (!first) out += ", ";
                first = false;
                append_repr(out, x, false, depth + 1);
            }
            out += ']';
            break;
        }
        case Kind::Dict: {
            out += '{';
            bool first = true;
            for (const auto& [k, x] : v.as_dict().entries()) {
                if (!first) out += ", ";
                first = false;
                append_repr(out, key_value(k), false, depth + 1);
                out += ": ";
                append_repr(out, x, false, depth + 1);
            }
            out += '}';
            break;
        }
        case Kind::Callable: out += "<function " + v.as_callable().name + ">"; break;
    }
}

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
    out += '"';
    for (size_t i = 0; i < s.size(); ++i) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    out += strprintf("\\u%04x", c);
                } else if (c >= 0x80 && ensure_ascii) {
                    std::string_view ch = utf8_chars(std::string_view(s).substr(i, 4))[0];
                    uint32_t cp = c;
                    if (ch.size() > 1) {
                        cp = c & (0xff >> (ch.size() + 1));
                        for (size_t k = 1; k < ch.size(); ++k) cp = (cp << 6) | ((unsigned char)ch[k] & 0x3f);
                    }
                    if (cp >= 0x10000) {
                        cp -= 0x10000;
                        out += strprintf("\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
                    } else {
                        out += strprintf("\\u%04x", cp);
                    }
                    i += ch.size() - 1;
                } else {
                    out += char(c);
                }
        }
    }
    out += '"';
}

void append_json(std::string& out, const Value& v, const JsonOptions& o, int depth) {
    if (depth > kMaxValueDepth) fail("tojson: value nested too deeply");
    const int indent = o.indent;
    const char* item_sep = o.custom_separators ? o.item_separator.c_str() : (indent < 0 ? ", " : ",");
    const char* key_sep = o.custom_separators ? o.key_separator.c_str() : ": ";
    auto newline = [&](int level) {
        out += '\n';
        out.append(size_t(indent) * size_t(level), ' ');
    };
    switch (v.kind()) {
        case Kind::Undefined:
        case Kind::None: out += "null"; break;
        case Kind::Bool: out += v.as_bool() ? "true" : "false"; break;
        case Kind::Int: out += std::to_string(v.as_int()); break;
        case Kind::Float: {
            double d = v.as_float();
            if (std::isnan(d)) out += "NaN";
            else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
            else out += format_float(d);
            break;
        }
        case Kind::String: append_json_string(out, v.as_string(), o.ensure_ascii); break;
        case Kind::List: {
            const List& items = v.as_list();
            if (items.empty()) {
                out += "[]";
                break;
            }
            out += '[';
            for (size_t i = 0; i < items.size(); ++i) {
                if (i) out += item_sep;
                if (indent >= 0) newline(depth + 1);
                append_json(out, items[i], o, depth + 1);
            }
            if (indent >= 0) newline(depth);
            out += ']';
            break;
        }
        case Kind::Dict: {
            std::vector<const std::pair<std::string, Value>*> entries;
            for (const auto& e : v.as_dict().entries()) entries.push_back(&e);
            if (entries.empty()) {
                out += "{}";
                break;
            }
            if (o.sort_keys)
                std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
            out += '{';
            for (size_t i = 0; i < entries.size(); ++i) {
                if (i) out += item_sep;
                if (indent >= 0) newline(depth + 1);
                Value key = key_value(entries[i]->first);  // json.dumps turns 1 into "1", None into "null"
                append_json_string(out, key.is_string() ? key.as_string() : key.is_none() ? "null" : to_json(key),
                                   o.ensure_ascii);
                out += key_sep;
                append_json(out, entries[i]->second, o, depth + 1);
            }
            if (indent >= 0) newline(depth);
            out += '}';
            break;
        }
        case Kind::Callable: fail("tojson: object of type function is not JSON serializable");
    }
}

template <typename Json>
Value value_from_json(const Json& j, int depth) {
    if (depth > kMaxValueDepth) fail("JSON context nested too deeply");
    switch (j.type()) {
        case nlohmann::json::value_t::null: return Value::none();
        case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
        case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
        case nlohmann::json::value_t::number_unsigned: {
            uint64_t u = j.template get<uint64_t>();
            if (u <= uint64_t(INT64_MAX)) return Value::integer(int64_t(u));
            return Value::number(double(u));
        }
        case nlohmann::json::value_t::number_float: return Value::number(j.template get<double>());
        case nlohmann::json::value_t::string: return Value::string(j.template get<std::string>());
        case nlohmann::json::value_t::array: {
            List items;
            items.reserve(j.size());
            for (const auto& x : j) items.push_back(value_from_json(x, depth + 1));
            return Value::list(std::move(items));
        }
        case nlohmann::json::value_t::object: {
            DictPtr d = make_dict();
            for (auto it = j.begin(); it != j.end(); ++it) d->set(it.key(), value_from_json(it.value(), depth + 1));
            return Value::dict(d);
        }
        default: return Value();  // binary, discarded
    }
}

}  // namespace

std::string to_str(const Value& v) {
    std::string out;
    append_repr(out, v, true, 0);
    return out;
}

std::string repr(const Value& v) {
    std::string out;
    append_repr(out, v, false, 0);
    return out;
}

std::string to_json(const Value& v, int indent) {
    JsonOptions o;
    o.indent = indent;
    return to_json(v, o);
}

std::string to_json(const Value& v, const JsonOptions& options) {
    std::string out;
    append_json(out, v, options, 0);
    return out;
}

Value from_json(const nlohmann::ordered_json& j) { return value_from_json(j, 0); }
Value from_json(const nlohmann::json& j) { return value_from_json(j, 0); }

namespace {

// Length of the UTF-8 sequence starting at s[i], or 1 for an invalid byte.
size_t utf8_seq_len(std::string_view s, size_t i) {
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 1;
    for (size_t k = 1; k < n; ++k)
        if (((unsigned char)s[i + k] >> 6) != 0x2) return 1;
    return n;
}

}  // namespace

std::vector<std::string_view> utf8_chars(std::string_view s) {
    std::vector<std::string_view> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_seq_len(s, i);
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

size_t utf8_length(std::string_view s) {
    size_t count = 0;
    for (size_t i = 0; i < s.size(); i += utf8_seq_len(s, i)) ++count;
    return count;
}

}  // namespace moelite::jinja
