// Jinja filters and tests, as Jinja2 3.1 defines them (with transformers'
// tojson), over the values of models/jinja_value.h.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "models/jinja_builtins.h"

namespace moelite::jinja {

namespace {

using A = const CallArgs&;
using FilterFn = Value (*)(Renderer&, const Value&, A);
using TestFn = bool (*)(Renderer&, const Value&, A);

bool flag(A a, size_t pos, const char* name, bool fallback) {
    const Value* v = a.get(pos, name);
    return v ? truthy(*v) : fallback;
}

const Value& required(A a, size_t pos, const char* name, const char* filter) {
    const Value* v = a.get(pos, name);
    if (!v) fail("%s: missing argument '%s'", filter, name);
    return *v;
}

int64_t int_of(const Value& v, const char* what) {
    if (v.is_int() || v.is_bool()) return v.as_int();
    fail("%s must be an integer, not '%s'", what, kind_name(v.kind()));
}

const std::string& string_of(const Value& v, const char* what) {
    if (!v.is_string()) fail("%s must be a string, not '%s'", what, kind_name(v.kind()));
    return v.as_string();
}

// `attribute='a.b'` or `attribute='0'`: Jinja2's dotted lookup.
Value lookup_path(const Value& item, const std::string& path) {
    Value v = item;
    size_t pos = 0;
    while (true) {
        size_t dot = path.find('.', pos);
        std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
        v = digits && part.size() < 18 ? get_item(v, Value::integer(std::stoll(part))) : get_item(v, Value::string(part));
        if (dot == std::string::npos) return v;
        pos = dot + 1;
    }
}

// Sort key for sort/min/max/unique/dictsort: strings lower-cased unless case-sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return Value::string(ascii_lower(v.as_string()));
    return v;
}

size_t length_of(const Value& v) {
    switch (v.kind()) {
        case Kind::String: return utf8_length(v.as_string());
        case Kind::List: return v.as_list().size();
        case Kind::Dict: return v.as_dict().size();
        case Kind::Undefined: return 0;
        default: fail("object of type '%s' has no len()", kind_name(v.kind()));
    }
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&#34;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

// Python float(str): optional whitespace, sign, digits, inf/nan.
bool parse_float(const std::string& text, double* out) {
    std::string s = py_strip(text, nullptr, true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (s.empty()) return false;
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size()) return false;
    *out = d;
    return true;
}

bool parse_int(const std::string& text, int base, int64_t* out) {
    std::string s = py_strip(text, nullptr, true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (s.empty()) return false;
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, base);
    if (end != s.c_str() + s.size() || errno == ERANGE) return false;
    *out = v;
    return true;
}

Value test_each(Renderer& r, const Value& seq, A a, size_t first_arg, bool by_attribute, bool keep) {
    std::string attribute;
    if (by_attribute) attribute = to_str(required(a, 0, "attribute", "selectattr"));
    size_t test_pos = first_arg;
    std::string test;
    if (a.args.size() > test_pos) test = string_of(a.args[test_pos], "test name");
    CallArgs test_args;
    for (size_t i = test_pos + 1; i < a.args.size(); ++i) test_args.args.push_back(a.args[i]);
    List out;
    if (!truthy(seq)) return Value::list(std::move(out));  // Jinja2 yields nothing for none, '' or []
    for (const Value& item : iterate(seq)) {
        r.charge(1);
        Value subject = by_attribute ? lookup_path(item, attribute) : item;
        bool ok = test.empty() ? truthy(subject) : apply_test(r, test, subject, test_args);
        if (ok == keep) out.push_back(item);
    }
    return Value::list(std::move(out));
}

Value filter_map(Renderer& r, const Value& v, A a) {
    List out;
    if (!truthy(v)) return Value::list(std::move(out));  // Jinja2 yields nothing for none, '' or []
    if (const Value* attribute = a.kwarg("attribute")) {
        const Value* fallback = a.kwarg("default");
        for (const Value& item : iterate(v)) {
            r.charge(1);
            Value x = lookup_path(item, to_str(*attribute));
            out.push_back(x.is_undefined() && fallback ? *fallback : x);
        }
        return Value::list(std::move(out));
    }
    if (a.args.empty()) fail("map: expected a filter name or attribute=");
    std::string name = string_of(a.args[0], "map filter name");
    CallArgs rest;
    rest.args.assign(a.args.begin() + 1, a.args.end());
    rest.kwargs = a.kwargs;
    for (const Value& item : iterate(v)) {
        r.charge(1);
        out.push_back(apply_filter(r, name, item, rest));
    }
    return Value::list(std::move(out));
}

Value filter_sort(Renderer& r, const Value& v, A a) {
    bool reverse = flag(a, 0, "reverse", false);
    bool case_sensitive = flag(a, 1, "case_sensitive", false);
    const Value* attribute = a.get(2, "attribute");
    List items = iterate(v);
    r.charge(items.size());
    std::vector<std::pair<Value, size_t>> keyed;
    for (size_t i = 0; i < items.size(); ++i)
        keyed.emplace_back(sort_key(attribute ? lookup_path(items[i], to_str(*attribute)) : items[i], case_sensitive), i);
    std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
        int c = compare(x.first, y.first);
        return reverse ? c > 0 : c < 0;
    });
    List out;
    for (const auto& k : keyed) out.push_back(items[k.second]);
    return Value::list(std::move(out));
}

Value filter_min_max(const Value& v, A a, bool want_max) {
    bool case_sensitive = flag(a, 0, "case_sensitive", false);
    const Value* attribute = a.get(1, "attribute");
    List items = iterate(v);
    if (items.empty()) return Value();
    size_t best = 0;
    Value best_key;
    for (size_t i = 0; i < items.size(); ++i) {
        Value k = sort_key(attribute ? lookup_path(items[i], to_str(*attribute)) : items[i], case_sensitive);
        if (i == 0 || (want_max ? compare(k, best_key) > 0 : compare(k, best_key) < 0)) {
            best = i;
            best_key = k;
        }
    }
    return items[best];
}

Value filter_tojson(Renderer& r, const Value& v, A a) {
    JsonOptions o;
    if (const Value* indent = a.get(0, "indent"); indent && !indent->is_none()) {
        if (indent->is_string()) fail("tojson: a string indent is not supported");
        o.indent = int(std::clamp<int64_t>(int_of(*indent, "tojson indent"), 0, 64));
    }
    o.sort_keys = flag(a, 99, "sort_keys", false);
    o.ensure_ascii = flag(a, 99, "ensure_ascii", false);
    if (const Value* sep = a.kwarg("separators"); sep && !sep->is_none()) {
        if (!sep->is_list() || sep->as_list().size() != 2) fail("tojson: separators must be a pair of strings");
        o.custom_separators = true;
        o.item_separator = string_of(sep->as_list()[0], "tojson separator");
        o.key_separator = string_of(sep->as_list()[1], "tojson separator");
    }
    std::string s = to_json(v, o);
    r.charge_bytes(s.size());
    r.check_size(s.size(), "string");
    return Value::string(std::move(s));
}

Value filter_round(Renderer&, const Value& v, A a) {
    int64_t precision = a.get(0, "precision") ? int_of(*a.get(0, "precision"), "round precision") : 0;
    std::string method = a.get(1, "method") ? to_str(*a.get(1, "method")) : "common";
    if ((v.is_int() || v.is_bool()) && method == "common") return Value::integer(v.as_int());  // as Python's round(int)
    if (!v.is_number() && !v.is_bool()) fail("round: expected a number, not '%s'", kind_name(v.kind()));
    double scale = std::pow(10.0, double(std::clamp<int64_t>(precision, -300, 300)));
    double x = v.as_float() * scale;
    if (method == "common") x = std::nearbyint(x);  // round half to even, like Python's round()
    else if (method == "floor") x = std::floor(x);
    else if (method == "ceil") x = std::ceil(x);
    else fail("round: method must be 'common', 'floor' or 'ceil'");
    return Value::number(x / scale);
}

Value filter_indent(Renderer& r, const Value& v, A a) {
    std::string pad = "    ";
    if (const Value* w = a.get(0, "width")) pad = w->is_string() ? w->as_string() : std::string(size_t(std::clamp<int64_t>(int_of(*w, "indent width"), 0, 256)), ' ');
    bool first = flag(a, 1, "first", false);
    bool blank = flag(a, 2, "blank", false);
    std::string s = to_str(v);
    std::vector<std::string> lines;
    for (size_t pos = 0;;) {
        size_t nl = s.find('\n', pos);
        lines.push_back(s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i) out += '\n';
        bool indent_it = i == 0 ? first : (blank || !lines[i].empty());
        if (indent_it) out += pad;
        out += lines[i];
    }
    r.charge_bytes(out.size());
    r.check_size(out.size(), "string");
    return Value::string(std::move(out));
}

// Jinja2's title filter: words start after whitespace or one of -([{<.
Value filter_title(Renderer&, const Value& v, A) {
    std::string s = to_str(v);
    bool start = true;
    for (char& c : s) {
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (letter) c = start ? ascii_upper(std::string(1, c))[0] : ascii_lower(std::string(1, c))[0];
        start = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-' || c == '(' || c == '[' || c == '{' || c == '<';
    }
    return Value::string(s);
}

// "%s and %d" | format(a, b): the common printf conversions.
Value filter_format(Renderer&, const Value& v, A a) {
    const std::string f = to_str(v);
    std::string out;
    size_t next = 0;
    for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '%') {
            out += f[i];
            continue;
        }
        if (i + 1 >= f.size()) fail("format: incomplete format");
        char conv = f[++i];
        if (conv == '%') {
            out += '%';
            continue;
        }
        if (next >= a.args.size()) fail("format: not enough arguments for format string");
        const Value& x = a.args[next++];
        if (conv == 's') out += to_str(x);
        else if (conv == 'r') out += repr(x);
        else if (conv == 'd' || conv == 'i') out += std::to_string(x.is_float() ? int64_t(x.as_float()) : int_of(x, "%d argument"));
        else if (conv == 'f') out += strprintf("%f", x.as_float());
        else fail("format: unsupported conversion '%%%c'", conv);
    }
    return Value::string(out);
}

const std::unordered_map<std::string, FilterFn>& filters() {
    static const std::unordered_map<std::string, FilterFn> table = {
        {"abs", [](Renderer&, const Value& v, A) {
             if (v.is_float()) return Value::number(std::fabs(v.as_float()));
             if (!v.is_int() && !v.is_bool()) fail("abs: expected a number, not '%s'", kind_name(v.kind()));
             if (v.as_int() == INT64_MIN) fail("integer overflow");
             return Value::integer(std::llabs(v.as_int()));
         }},
        {"attr", [](Renderer&, const Value& v, A a) { return get_attr(v, to_str(required(a, 0, "name", "attr")), false); }},
        {"capitalize", [](Renderer&, const Value& v, A) {
             std::string s = ascii_lower(to_str(v));
             if (!s.empty()) s[0] = ascii_upper(s.substr(0, 1))[0];
             return Value::string(s);
         }},
        {"center", [](Renderer&, const Value& v, A a) {
             std::string s = to_str(v);
             int64_t width = a.get(0, "width") ? std::clamp<int64_t>(int_of(*a.get(0, "width"), "width"), 0, 4096) : 80;
             int64_t len = int64_t(utf8_length(s));
             if (width <= len) return Value::string(s);
             int64_t left = (width - len) / 2 + ((width - len) % 2 & (width % 2)), right = width - len - left;
             return Value::string(std::string(size_t(left), ' ') + s + std::string(size_t(right), ' '));
         }},
        {"count", [](Renderer&, const Value& v, A) { return Value::integer(int64_t(length_of(v))); }},
        {"length", [](Renderer&, const Value& v, A) { return Value::integer(int64_t(length_of(v))); }},
        {"default", [](Renderer&, const Value& v, A a) {
             const Value* fallback = a.get(0, "default_value");
             bool boolean = flag(a, 1, "boolean", false);
             if (v.is_undefined() || (boolean && !truthy(v))) return fallback ? *fallback : Value::string("");
             return v;
         }},
        {"dictsort", [](Renderer&, const Value& v, A a) {
             if (!v.is_dict()) fail("dictsort: expected a dict, not '%s'", kind_name(v.kind()));
             bool case_sensitive = flag(a, 0, "case_sensitive", false);
             bool by_value = a.get(1, "by") && to_str(*a.get(1, "by")) == "value";
             bool reverse = flag(a, 2, "reverse", false);
             List pairs;
             for (const auto& [k, x] : v.as_dict().entries()) pairs.push_back(Value::list(List{key_value(k), x}));
             std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& p, const Value& q) {
                 size_t i = by_value ? 1 : 0;
                 int c = compare(sort_key(p.as_list()[i], case_sensitive), sort_key(q.as_list()[i], case_sensitive));
                 return reverse ? c > 0 : c < 0;
             });
             return Value::list(std::move(pairs));
         }},
        {"escape", [](Renderer&, const Value& v, A) { return Value::string(html_escape(to_str(v))); }},
        {"first", [](Renderer&, const Value& v, A) {
             if (v.is_list()) return v.as_list().empty() ? Value() : v.as_list().front();
             List items = iterate(v);
             return items.empty() ? Value() : items.front();
         }},
        {"last", [](Renderer&, const Value& v, A) {
             List items = iterate(v);
             return items.empty() ? Value() : items.back();
         }},
        {"float", [](Renderer&, const Value& v, A a) {
             const Value* fallback = a.get(0, "default");
             if (v.is_number() || v.is_bool()) return Value::number(v.as_float());
             double d = 0;
             if (v.is_string() && parse_float(v.as_string(), &d)) return Value::number(d);
             return fallback ? *fallback : Value::number(0.0);
         }},
        {"int", [](Renderer&, const Value& v, A a) {
             const Value* fallback = a.get(0, "default");
             int base = a.get(1, "base") ? int(std::clamp<int64_t>(int_of(*a.get(1, "base"), "base"), 2, 36)) : 10;
             if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
             if (v.is_float() && std::isfinite(v.as_float()) && std::fabs(v.as_float()) < 9.2e18)
                 return Value::integer(int64_t(v.as_float()));
             int64_t i = 0;
             double d = 0;
             if (v.is_string() && parse_int(v.as_string(), base, &i)) return Value::integer(i);
             if (v.is_string() && base == 10 && parse_float(v.as_string(), &d) && std::isfinite(d) && std::fabs(d) < 9.2e18)
                 return Value::integer(int64_t(d));
             return fallback ? *fallback : Value::integer(0);
         }},
        {"indent", filter_indent},
        {"items", [](Renderer& r, const Value& v, A) {
             if (v.is_undefined()) return Value::list(List{});
             if (!v.is_dict()) fail("items: expected a dict, not '%s'", kind_name(v.kind()));
             List out;
             for (const auto& [k, x] : v.as_dict().entries()) out.push_back(Value::list(List{key_value(k), x}));
             r.charge(out.size());
             return Value::list(std::move(out));
         }},
        {"join", [](Renderer& r, const Value& v, A a) {
             std::string sep = a.get(0, "d") ? to_str(*a.get(0, "d")) : "";
             const Value* attribute = a.get(1, "attribute");
             std::string out;
             bool first = true;
             for (const Value& item : iterate(v)) {
                 if (!first) out += sep;
                 first = false;
                 out += to_str(attribute ? lookup_path(item, to_str(*attribute)) : item);
                 r.check_size(out.size(), "string");
             }
             r.charge_bytes(out.size());
             return Value::string(std::move(out));
         }},
        {"list", [](Renderer& r, const Value& v, A) {
             List items = iterate(v);
             r.charge(items.size());
             return Value::list(std::move(items));
         }},
        {"lower", [](Renderer&, const Value& v, A) { return Value::string(ascii_lower(to_str(v))); }},
        {"upper", [](Renderer&, const Value& v, A) { return Value::string(ascii_upper(to_str(v))); }},
        {"map", filter_map},
        {"max", [](Renderer&, const Value& v, A a) { return filter_min_max(v, a, true); }},
        {"min", [](Renderer&, const Value& v, A a) { return filter_min_max(v, a, false); }},
        {"pprint", [](Renderer&, const Value& v, A) { return Value::string(repr(v)); }},
        {"reject", [](Renderer& r, const Value& v, A a) { return test_each(r, v, a, 0, false, false); }},
        {"select", [](Renderer& r, const Value& v, A a) { return test_each(r, v, a, 0, false, true); }},
        {"rejectattr", [](Renderer& r, const Value& v, A a) { return test_each(r, v, a, 1, true, false); }},
        {"selectattr", [](Renderer& r, const Value& v, A a) { return test_each(r, v, a, 1, true, true); }},
        {"replace", [](Renderer& r, const Value& v, A a) {
             Value method = get_attr(Value::string(to_str(v)), "replace", true);
             return r.call(method, a);
         }},
        {"reverse", [](Renderer& r, const Value& v, A) {
             if (v.is_string()) {
                 std::vector<std::string_view> cs = utf8_chars(v.as_string());
                 std::string out;
                 for (size_t i = cs.size(); i > 0; --i) out += cs[i - 1];
                 return Value::string(out);
             }
             List items = iterate(v);
             r.charge(items.size());
             std::reverse(items.begin(), items.end());
             return Value::list(std::move(items));
         }},
        {"round", filter_round},
        {"safe", [](Renderer&, const Value& v, A) { return v; }},
        {"sort", filter_sort},
        {"string", [](Renderer&, const Value& v, A) { return Value::string(to_str(v)); }},
        {"sum", [](Renderer& r, const Value& v, A a) {
             const Value* attribute = a.get(0, "attribute");
             Value total = a.get(1, "start") ? *a.get(1, "start") : Value::integer(0);
             for (const Value& item : iterate(v))
                 total = binary_op(r, "+", total, attribute ? lookup_path(item, to_str(*attribute)) : item);
             return total;
         }},
        {"title", filter_title},
        {"tojson", filter_tojson},
        {"trim", [](Renderer&, const Value& v, A a) {
             return Value::string(py_strip(to_str(v), a.get(0, "chars"), true, true));
         }},
        {"unique", [](Renderer& r, const Value& v, A a) {
             bool case_sensitive = flag(a, 0, "case_sensitive", false);
             const Value* attribute = a.get(1, "attribute");
             List out, seen;
             for (const Value& item : iterate(v)) {
                 r.charge(seen.size() + 1);
                 Value k = sort_key(attribute ? lookup_path(item, to_str(*attribute)) : item, case_sensitive);
                 if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) continue;
                 seen.push_back(k);
                 out.push_back(item);
             }
             return Value::list(std::move(out));
         }},
        {"wordcount", [](Renderer&, const Value& v, A) {
             return Value::integer(int64_t(py_split(to_str(v), nullptr, -1).size()));
         }},
        {"format", filter_format},
    };
    return table;
}

const std::unordered_map<std::string, std::string>& filter_aliases() {
    static const std::unordered_map<std::string, std::string> aliases = {
        {"d", "default"}, {"e", "escape"}, {"forceescape", "escape"}};
    return aliases;
}

bool is_lower_or_upper(const Value& v, bool lower) {
    if (!v.is_string()) return false;
    const std::string& s = v.as_string();
    return (lower ? ascii_lower(s) : ascii_upper(s)) == s;
}

const Value& arg0(A a, const char* test) {
    if (a.args.empty()) fail("test '%s' needs an argument", test);
    return a.args[0];
}

const std::unordered_map<std::string, TestFn>& tests() {
    static const std::unordered_map<std::string, TestFn> table = {
        {"defined", [](Renderer&, const Value& v, A) { return !v.is_undefined(); }},
        {"undefined", [](Renderer&, const Value& v, A) { return v.is_undefined(); }},
        {"none", [](Renderer&, const Value& v, A) { return v.is_none(); }},
        {"boolean", [](Renderer&, const Value& v, A) { return v.is_bool(); }},
        {"true", [](Renderer&, const Value& v, A) { return v.is_bool() && v.as_bool(); }},
        {"false", [](Renderer&, const Value& v, A) { return v.is_bool() && !v.as_bool(); }},
        {"integer", [](Renderer&, const Value& v, A) { return v.is_int(); }},
        {"float", [](Renderer&, const Value& v, A) { return v.is_float(); }},
        {"number", [](Renderer&, const Value& v, A) { return v.is_number() || v.is_bool(); }},
        {"string", [](Renderer&, const Value& v, A) { return v.is_string(); }},
        {"mapping", [](Renderer&, const Value& v, A) { return v.is_dict() && !v.as_dict().is_namespace; }},
        // Jinja2 calls undefined iterable too; the reference does not, and neither do we.
        {"iterable", [](Renderer&, const Value& v, A) { return v.is_list() || v.is_string() || v.is_dict(); }},
        {"sequence", [](Renderer&, const Value& v, A) { return v.is_list() || v.is_string() || v.is_dict(); }},
        {"callable", [](Renderer&, const Value& v, A) { return v.is_callable(); }},
        {"odd", [](Renderer&, const Value& v, A) { return (int_of(v, "odd operand") & 1) != 0; }},
        {"even", [](Renderer&, const Value& v, A) { return (int_of(v, "even operand") & 1) == 0; }},
        {"divisibleby", [](Renderer&, const Value& v, A a) {
             int64_t d = int_of(arg0(a, "divisibleby"), "divisibleby argument");
             if (d == 0) fail("integer division or modulo by zero");
             return d == -1 || int_of(v, "divisibleby operand") % d == 0;
         }},
        {"eq", [](Renderer&, const Value& v, A a) { return equals(v, arg0(a, "eq")); }},
        {"ne", [](Renderer&, const Value& v, A a) { return !equals(v, arg0(a, "ne")); }},
        {"lt", [](Renderer&, const Value& v, A a) { return compare(v, arg0(a, "lt")) < 0; }},
        {"le", [](Renderer&, const Value& v, A a) { return compare(v, arg0(a, "le")) <= 0; }},
        {"gt", [](Renderer&, const Value& v, A a) { return compare(v, arg0(a, "gt")) > 0; }},
        {"ge", [](Renderer&, const Value& v, A a) { return compare(v, arg0(a, "ge")) >= 0; }},
        {"in", [](Renderer&, const Value& v, A a) { return contains(arg0(a, "in"), v); }},
        {"sameas", [](Renderer&, const Value& v, A a) {
             const Value& o = arg0(a, "sameas");
             if (v.kind() != o.kind()) return false;
             if (v.is_list()) return v.list_ptr() == o.list_ptr();
             if (v.is_dict()) return v.dict_ptr() == o.dict_ptr();
             if (v.is_callable()) return &v.as_callable() == &o.as_callable();
             return equals(v, o);
         }},
        {"lower", [](Renderer&, const Value& v, A) { return is_lower_or_upper(v, true); }},
        {"upper", [](Renderer&, const Value& v, A) { return is_lower_or_upper(v, false); }},
        {"escaped", [](Renderer&, const Value&, A) { return false; }},
        {"filter", [](Renderer&, const Value& v, A) { return v.is_string() && is_filter_name(v.as_string()); }},
        {"test", [](Renderer&, const Value& v, A) { return v.is_string() && is_test_name(v.as_string()); }},
    };
    return table;
}

const std::unordered_map<std::string, std::string>& test_aliases() {
    static const std::unordered_map<std::string, std::string> aliases = {
        {"equalto", "eq"}, {"==", "eq"},       {"!=", "ne"}, {"lessthan", "lt"}, {"<", "lt"},
        {"<=", "le"},      {"greaterthan", "gt"}, {">", "gt"}, {">=", "ge"}};
    return aliases;
}

template <typename Fn>
const Fn* find_builtin(const std::unordered_map<std::string, Fn>& table,
                       const std::unordered_map<std::string, std::string>& aliases, const std::string& name) {
    auto alias = aliases.find(name);
    auto it = table.find(alias == aliases.end() ? name : alias->second);
    return it == table.end() ? nullptr : &it->second;
}

}  // namespace

bool is_filter_name(const std::string& name) { return find_builtin(filters(), filter_aliases(), name) != nullptr; }
bool is_test_name(const std::string& name) { return find_builtin(tests(), test_aliases(), name) != nullptr; }

Value apply_filter(Renderer& r, const std::string& name, const Value& operand, const CallArgs& args) {
    const FilterFn* fn = find_builtin(filters(), filter_aliases(), name);
    if (!fn) fail("no filter named '%s'", name.c_str());
    return (*fn)(r, operand, args);
}

bool apply_test(Renderer& r, const std::string& name, const Value& operand, const CallArgs& args) {
    const TestFn* fn = find_builtin(tests(), test_aliases(), name);
    if (!fn) fail("no test named '%s'", name.c_str());
    return (*fn)(r, operand, args);
}

}  // namespace moelite::jinja
