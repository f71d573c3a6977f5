// Jinja operators, member/item/slice access, methods of str/dict/list, and
// the global functions. Python semantics (see models/jinja_eval.h for where
// we are more lenient).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>

#include "models/jinja_builtins.h"

namespace moelite::jinja {

namespace {

uint32_t decode(std::string_view ch) {
    auto b = [&](size_t i) { return uint32_t((unsigned char)ch[i]); };
    switch (ch.size()) {
        case 1: return b(0);
        case 2: return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
        case 3: return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
        default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) | (b(3) & 0x3f);
    }
}

// Python's str.isspace() code points.
bool is_py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

int64_t to_index(const Value& v, const char* what) {
    if (v.is_int() || v.is_bool()) return v.as_int();
    fail("%s must be an integer, not '%s'", what, kind_name(v.kind()));
}

void check_list_size(Renderer& r, size_t n) {
    if (n > r.options().max_output_bytes / 16) fail("list longer than %zu items", r.options().max_output_bytes / 16);
    r.charge(n);
}

void check_overflow(bool overflow) {
    if (overflow) fail("integer overflow");
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
    if (a.is_float() || b.is_float() || op == "/") {
        double x = a.as_float(), y = b.as_float();
        if (op == "+") return Value::number(x + y);
        if (op == "-") return Value::number(x - y);
        if (op == "*") return Value::number(x * y);
        if (op == "**") {
            if (x == 0.0 && y < 0) fail("0.0 cannot be raised to a negative power");
            return Value::number(std::pow(x, y));
        }
        if (y == 0.0) fail(op == "/" ? "division by zero" : "float modulo or floor division by zero");
        if (op == "/") return Value::number(x / y);
        if (op == "//") return Value::number(std::floor(x / y));
        double m = std::fmod(x, y);
        if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
        return Value::number(m);
    }
    int64_t x = a.as_int(), y = b.as_int(), out = 0;
    if (op == "+") {
        check_overflow(__builtin_add_overflow(x, y, &out));
        return Value::integer(out);
    }
    if (op == "-") {
        check_overflow(__builtin_sub_overflow(x, y, &out));
        return Value::integer(out);
    }
    if (op == "*") {
        check_overflow(__builtin_mul_overflow(x, y, &out));
        return Value::integer(out);
    }
    if (op == "**") {
        if (y < 0) return Value::number(std::pow(double(x), double(y)));
        int64_t result = 1, base = x;
        while (y > 0) {
            if (y & 1) {
                check_overflow(__builtin_mul_overflow(result, base, &out));
                result = out;
            }
            y >>= 1;
            if (y > 0) {
                check_overflow(__builtin_mul_overflow(base, base, &out));
                base = out;
            }
        }
        return Value::integer(result);
    }
    if (y == 0) fail("integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) fail("integer overflow");
    if (op == "//") {
        int64_t q = x / y;
        if (x % y != 0 && ((x < 0) != (y < 0))) --q;
        return Value::integer(q);
    }
    int64_t m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::integer(m);
}

bool numeric(const Value& v) { return v.is_number() || v.is_bool(); }

Value repeat(Renderer& r, const Value& seq, int64_t n) {
    if (n < 0) n = 0;
    if (seq.is_string()) {
        const std::string& s = seq.as_string();
        if (!s.empty() && uint64_t(n) > r.options().max_output_bytes / s.size())
            fail("string longer than %zu bytes", r.options().max_output_bytes);
        r.charge_bytes(s.size() * size_t(n));
        std::string out;
        out.reserve(s.size() * size_t(n));
        for (int64_t i = 0; i < n; ++i) out += s;
        return Value::string(std::move(out));
    }
    const List& items = seq.as_list();
    if (!items.empty() && uint64_t(n) > r.options().max_output_bytes / items.size())
        fail("list longer than %zu items", r.options().max_output_bytes / 16);
    check_list_size(r, items.size() * size_t(n));
    List out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
    return Value::list(std::move(out));
}

}  // namespace

Value binary_op(Renderer& r, const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
        std::string s = to_str(a) + to_str(b);
        r.charge_bytes(s.size());
        r.check_size(s.size(), "string");
        return Value::string(std::move(s));
    }
    if (numeric(a) && numeric(b)) return arithmetic(op, a, b);
    if (op == "+") {
        if (a.is_list() && b.is_list()) {
            check_list_size(r, a.as_list().size() + b.as_list().size());
            List out = a.as_list();
            out.insert(out.end(), b.as_list().begin(), b.as_list().end());
            return Value::list(std::move(out));
        }
        // str + str; str + number concatenates as @huggingface/jinja does (Python refuses)
        if ((a.is_string() && (b.is_string() || numeric(b))) || (b.is_string() && numeric(a))) {
            std::string s = to_str(a) + to_str(b);
            r.charge_bytes(s.size());
            r.check_size(s.size(), "string");
            return Value::string(std::move(s));
        }
    }
    if (op == "*") {
        if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(r, a, b.as_int());
        if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(r, b, a.as_int());
    }
    if (a.is_undefined() || b.is_undefined())
        fail("unsupported operand for %s: an undefined value", op.c_str());
    fail("unsupported operand type(s) for %s: '%s' and '%s'", op.c_str(), kind_name(a.kind()), kind_name(b.kind()));
}

bool contains(const Value& container, const Value& item) {
    switch (container.kind()) {
        case Kind::String:
            if (!item.is_string())
                fail("'in <string>' requires string as left operand, not %s", kind_name(item.kind()));
            return container.as_string().find(item.as_string()) != std::string::npos;
        case Kind::List:
            for (const Value& x : container.as_list())
                if (equals(x, item)) return true;
            return false;
        case Kind::Dict:
            if (item.is_list() || item.is_dict() || item.is_undefined() || item.is_callable()) return false;
            return container.as_dict().find(dict_key(item)) != nullptr;
        case Kind::Undefined: return false;
        default: fail("argument of type '%s' is not iterable", kind_name(container.kind()));
    }
}

bool compare_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(b, a);
    if (op == "not in") return !contains(b, a);
    int c = compare(a, b);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
}

List iterate(const Value& v) {
    switch (v.kind()) {
        case Kind::List: return v.as_list();
        case Kind::Dict: {
            List keys;
            for (const auto& entry : v.as_dict().entries()) keys.push_back(key_value(entry.first));
            return keys;
        }
        case Kind::String: {
            List chars;
            for (std::string_view c : utf8_chars(v.as_string())) chars.push_back(Value::string(std::string(c)));
            return chars;
        }
        case Kind::Undefined: return {};
        default: fail("'%s' object is not iterable", kind_name(v.kind()));
    }
}

// ---- strings -------------------------------------------------------------

std::string ascii_lower(std::string s) {
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return s;
}

std::string ascii_upper(std::string s) {
    for (char& c : s)
        if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    return s;
}

std::string py_strip(const std::string& s, const Value* chars, bool left, bool right) {
    std::vector<std::string_view> cs = utf8_chars(s);
    bool custom = chars && !chars->is_none() && !chars->is_undefined();
    const std::string chars_text = custom ? to_str(*chars) : std::string();
    const std::vector<std::string_view> set = utf8_chars(chars_text);
    auto strip_it = [&](std::string_view c) {
        if (!custom) return is_py_space(decode(c));
        return std::find(set.begin(), set.end(), c) != set.end();
    };
    size_t b = 0, e = cs.size();
    if (left)
        while (b < e && strip_it(cs[b])) ++b;
    if (right)
        while (e > b && strip_it(cs[e - 1])) --e;
    if (b == e) return "";
    return std::string(cs[b].data(), size_t(cs[e - 1].data() + cs[e - 1].size() - cs[b].data()));
}

List py_split(const std::string& s, const Value* sep, int64_t maxsplit) {
    List out;
    if (!sep || sep->is_none() || sep->is_undefined()) {
        std::vector<std::string_view> cs = utf8_chars(s);
        size_t i = 0;
        while (true) {
            while (i < cs.size() && is_py_space(decode(cs[i]))) ++i;
            if (i == cs.size()) break;
            if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
                const char* begin = cs[i].data();
                std::string rest(begin, size_t(s.data() + s.size() - begin));
                out.push_back(Value::string(std::move(rest)));
                break;
            }
            size_t j = i;
            while (j < cs.size() && !is_py_space(decode(cs[j]))) ++j;
            out.push_back(Value::string(std::string(cs[i].data(), size_t(cs[j - 1].data() + cs[j - 1].size() - cs[i].data()))));
            i = j;
        }
        return out;
    }
    if (!sep->is_string()) fail("split(): separator must be a string or None, not '%s'", kind_name(sep->kind()));
    const std::string& d = sep->as_string();
    if (d.empty()) fail("split(): empty separator");
    size_t pos = 0;
    while (true) {
        size_t hit = s.find(d, pos);
        if (hit == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) == maxsplit)) {
            out.push_back(Value::string(s.substr(pos)));
            return out;
        }
        out.push_back(Value::string(s.substr(pos, hit - pos)));
        pos = hit + d.size();
    }
}

namespace {

List py_rsplit(const std::string& s, const Value* sep, int64_t maxsplit) {
    if (maxsplit < 0) return py_split(s, sep, -1);
    if (!sep || sep->is_none() || sep->is_undefined()) {
        std::vector<std::string_view> cs = utf8_chars(s);
        List rev;
        size_t i = cs.size();
        while (true) {
            while (i > 0 && is_py_space(decode(cs[i - 1]))) --i;
            if (i == 0) break;
            if (int64_t(rev.size()) == maxsplit) {  // the rest keeps its leading whitespace
                rev.push_back(Value::string(std::string(s.data(), size_t(cs[i - 1].data() + cs[i - 1].size() - s.data()))));
                break;
            }
            size_t j = i;
            while (j > 0 && !is_py_space(decode(cs[j - 1]))) --j;
            rev.push_back(Value::string(std::string(cs[j].data(), size_t(cs[i - 1].data() + cs[i - 1].size() - cs[j].data()))));
            i = j;
        }
        return List(rev.rbegin(), rev.rend());
    }
    if (!sep->is_string()) fail("rsplit(): separator must be a string or None");
    const std::string& d = sep->as_string();
    if (d.empty()) fail("rsplit(): empty separator");
    List rev;
    size_t end = s.size();
    while (int64_t(rev.size()) < maxsplit) {
        if (end < d.size()) break;
        size_t hit = s.rfind(d, end - d.size());
        if (hit == std::string::npos) break;
        rev.push_back(Value::string(s.substr(hit + d.size(), end - hit - d.size())));
        end = hit;
    }
    rev.push_back(Value::string(s.substr(0, end)));
    return List(rev.rbegin(), rev.rend());
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
    std::string out;
    if (old.empty()) {
        std::vector<std::string_view> cs = utf8_chars(s);
        int64_t done = 0;
        for (size_t i = 0; i <= cs.size(); ++i) {
            if (count < 0 || done < count) {
                out += repl;
                ++done;
            }
            if (i < cs.size()) out += cs[i];
        }
        return out;
    }
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
        size_t hit = s.find(old, pos);
        if (hit == std::string::npos) break;
        out.append(s, pos, hit - pos);
        out += repl;
        pos = hit + old.size();
        ++done;
    }
    out.append(s, pos, std::string::npos);
    return out;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python str.title(): a letter after a non-letter is upper-cased, others lower-cased.
std::string py_title(const std::string& s) {
    std::string out = s;
    bool prev_letter = false;
    for (char& c : out) {
        if (is_alpha(c)) {
            c = prev_letter ? ascii_lower(std::string(1, c))[0] : ascii_upper(std::string(1, c))[0];
            prev_letter = true;
        } else {
            prev_letter = (unsigned char)c >= 0x80;  // non-ASCII: taken as a letter (no Unicode tables here)
        }
    }
    return out;
}

bool prefix_match(const std::string& s, const Value& prefix, bool at_end) {
    auto one = [&](const Value& p) {
        if (!p.is_string()) fail("startswith/endswith: expected a string or a tuple of strings");
        const std::string& x = p.as_string();
        if (x.size() > s.size()) return false;
        return at_end ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0;
    };
    if (prefix.is_list()) {
        for (const Value& p : prefix.as_list())
            if (one(p)) return true;
        return false;
    }
    return one(prefix);
}

bool all_chars(const std::string& s, bool (*pred)(char)) {
    if (s.empty()) return false;
    for (char c : s)
        if (!pred(c)) return false;
    return true;
}

// "{} {0} {name}".format(...): plain fields only, no format specs.
std::string py_format(const std::string& f, const CallArgs& a) {
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < f.size(); ++i) {
        char c = f[i];
        if (c == '}' && i + 1 < f.size() && f[i + 1] == '}') {
            out += '}';
            ++i;
        } else if (c == '{' && i + 1 < f.size() && f[i + 1] == '{') {
            out += '{';
            ++i;
        } else if (c == '{') {
            size_t close = f.find('}', i);
            if (close == std::string::npos) fail("format(): single '{' encountered");
            std::string field = f.substr(i + 1, close - i - 1);
            if (field.find_first_of(":!.[") != std::string::npos) fail("format(): format specs are not supported");
            const Value* v = nullptr;
            if (field.empty()) {
                v = auto_index < a.args.size() ? &a.args[auto_index] : nullptr;
                ++auto_index;
            } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
                size_t k = std::stoul(field);
                v = k < a.args.size() ? &a.args[k] : nullptr;
            } else {
                v = a.kwarg(field);
            }
            if (!v) fail("format(): no value for field {%s}", field.c_str());
            out += to_str(*v);
            i = close;
        } else {
            out += c;
        }
    }
    return out;
}

int64_t int_arg(const CallArgs& a, size_t pos, const char* name, int64_t fallback) {
    const Value* v = a.get(pos, name);
    if (!v || v->is_none()) return fallback;
    return to_index(*v, name);
}

Value string_method(const std::string& s, const std::string& name) {
    using A = const CallArgs&;
    auto bind = [&](auto fn) {
        return make_function("str." + name, [s, fn](A a, Renderer& r) -> Value { return fn(s, a, r); });
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        bool left = name != "rstrip", right = name != "lstrip";
        return bind([left, right](const std::string& x, A a, Renderer&) {
            return Value::string(py_strip(x, a.get(0, "chars"), left, right));
        });
    }
    if (name == "split" || name == "rsplit") {
        bool from_right = name == "rsplit";
        return bind([from_right](const std::string& x, A a, Renderer&) {
            int64_t maxsplit = int_arg(a, 1, "maxsplit", -1);
            const Value* sep = a.get(0, "sep");
            return Value::list(from_right ? py_rsplit(x, sep, maxsplit) : py_split(x, sep, maxsplit));
        });
    }
    if (name == "splitlines")
        return bind([](const std::string& x, A, Renderer&) {
            List out;
            size_t pos = 0;
            while (pos < x.size()) {
                size_t nl = x.find('\n', pos);
                if (nl == std::string::npos) nl = x.size();
                std::string line = x.substr(pos, nl - pos);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                out.push_back(Value::string(line));
                pos = nl + 1;
            }
            return Value::list(std::move(out));
        });
    if (name == "startswith" || name == "endswith") {
        bool at_end = name == "endswith";
        return bind([at_end](const std::string& x, A a, Renderer&) {
            if (a.args.empty()) fail("startswith/endswith: missing argument");
            return Value::boolean(prefix_match(x, a.args[0], at_end));
        });
    }
    if (name == "replace")
        return bind([](const std::string& x, A a, Renderer& r) {
            if (a.args.size() < 2 || !a.args[0].is_string() || !a.args[1].is_string())
                fail("replace(): expected two string arguments");
            std::string out = py_replace(x, a.args[0].as_string(), a.args[1].as_string(), int_arg(a, 2, "count", -1));
            r.charge_bytes(out.size());
            r.check_size(out.size(), "string");
            return Value::string(std::move(out));
        });
    if (name == "upper") return bind([](const std::string& x, A, Renderer&) { return Value::string(ascii_upper(x)); });
    if (name == "lower") return bind([](const std::string& x, A, Renderer&) { return Value::string(ascii_lower(x)); });
    if (name == "title") return bind([](const std::string& x, A, Renderer&) { return Value::string(py_title(x)); });
    if (name == "capitalize")
        return bind([](const std::string& x, A, Renderer&) {
            std::string out = ascii_lower(x);
            if (!out.empty()) out[0] = ascii_upper(out.substr(0, 1))[0];
            return Value::string(out);
        });
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex")
        return bind([name](const std::string& x, A a, Renderer&) {
            if (a.args.empty() || !a.args[0].is_string()) fail("%s(): expected a string argument", name.c_str());
            size_t hit = name[0] == 'r' ? x.rfind(a.args[0].as_string()) : x.find(a.args[0].as_string());
            if (hit == std::string::npos) {
                if (name.find("index") != std::string::npos) fail("substring not found");
                return Value::integer(-1);
            }
            return Value::integer(int64_t(utf8_length(std::string_view(x).substr(0, hit))));
        });
    if (name == "count")
        return bind([](const std::string& x, A a, Renderer&) {
            if (a.args.empty() || !a.args[0].is_string()) fail("count(): expected a string argument");
            const std::string& sub = a.args[0].as_string();
            if (sub.empty()) return Value::integer(int64_t(utf8_length(x)) + 1);
            int64_t n = 0;
            for (size_t p = x.find(sub); p != std::string::npos; p = x.find(sub, p + sub.size())) ++n;
            return Value::integer(n);
        });
    if (name == "join")
        return bind([](const std::string& x, A a, Renderer& r) {
            if (a.args.empty()) fail("join(): missing argument");
            std::string out;
            bool first = true;
            for (const Value& item : iterate(a.args[0])) {
                if (!first) out += x;
                first = false;
                out += to_str(item);
                r.check_size(out.size(), "string");
            }
            r.charge_bytes(out.size());
            return Value::string(std::move(out));
        });
    if (name == "format")
        return bind([](const std::string& x, A a, Renderer&) { return Value::string(py_format(x, a)); });
    static const std::pair<const char*, bool (*)(char)> predicates[] = {
        {"isdigit", [](char c) { return c >= '0' && c <= '9'; }},
        {"isalpha", [](char c) { return is_alpha(c); }},
        {"isalnum", [](char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }},
        {"isspace", [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }},
    };
    for (const auto& [pname, pred] : predicates)
        if (name == pname) return bind([pred = pred](const std::string& x, A, Renderer&) { return Value::boolean(all_chars(x, pred)); });
    if (name == "islower" || name == "isupper") {
        bool lower = name == "islower";
        return bind([lower](const std::string& x, A, Renderer&) {
            bool cased = false;
            for (char c : x) {
                if (!is_alpha(c)) continue;
                cased = true;
                if (lower != (c >= 'a' && c <= 'z')) return Value::boolean(false);
            }
            return Value::boolean(cased);
        });
    }
    return Value();
}

Value dict_method(const DictPtr& d, const std::string& name) {
    if (name == "get")
        return make_function("dict.get", [d](const CallArgs& a, Renderer&) {
            if (a.args.empty()) fail("get(): missing key");
            const Value& k = a.args[0];
            const Value* v = k.is_list() || k.is_dict() || k.is_undefined() || k.is_callable() ? nullptr : d->find(dict_key(k));
            if (v) return *v;
            const Value* fallback = a.get(1, "default");
            return fallback ? *fallback : Value::none();
        });
    if (name == "items" || name == "keys" || name == "values")
        return make_function("dict." + name, [d, name](const CallArgs&, Renderer& r) {
            List out;
            for (const auto& [k, v] : d->entries()) {
                if (name == "items") out.push_back(Value::list(List{key_value(k), v}));
                else out.push_back(name == "keys" ? key_value(k) : v);
            }
            r.charge(out.size());
            return Value::list(std::move(out));
        });
    return Value();
}

Value list_method(const ListPtr& l, const std::string& name) {
    if (name == "index" || name == "count")
        return make_function("list." + name, [l, name](const CallArgs& a, Renderer&) {
            if (a.args.empty()) fail("%s(): missing argument", name.c_str());
            int64_t n = 0;
            for (size_t i = 0; i < l->size(); ++i) {
                if (!equals((*l)[i], a.args[0])) continue;
                if (name == "index") return Value::integer(int64_t(i));
                ++n;
            }
            if (name == "index") fail("list.index(x): x not in list");
            return Value::integer(n);
        });
    return Value();
}

}  // namespace

Value get_attr(const Value& object, const std::string& name, bool for_call) {
    switch (object.kind()) {
        case Kind::Dict: {
            const Value* v = object.as_dict().find(name);
            if (v && !for_call) return *v;
            Value m = object.as_dict().is_namespace ? Value() : dict_method(object.dict_ptr(), name);
            if (!m.is_undefined()) return m;
            return v ? *v : Value();
        }
        case Kind::String: return string_method(object.as_string(), name);
        case Kind::List: return list_method(object.list_ptr(), name);
        default: return Value();
    }
}

Value get_item(const Value& object, const Value& key) {
    switch (object.kind()) {
        case Kind::List: {
            if (key.is_string()) return get_attr(object, key.as_string(), false);
            if (!key.is_int() && !key.is_bool()) return Value();
            const List& items = object.as_list();
            int64_t i = key.as_int();
            if (i < 0) i += int64_t(items.size());
            if (i < 0 || i >= int64_t(items.size())) return Value();
            return items[size_t(i)];
        }
        case Kind::String: {
            if (!key.is_int() && !key.is_bool()) return Value();
            std::vector<std::string_view> cs = utf8_chars(object.as_string());
            int64_t i = key.as_int();
            if (i < 0) i += int64_t(cs.size());
            if (i < 0 || i >= int64_t(cs.size())) return Value();
            return Value::string(std::string(cs[size_t(i)]));
        }
        case Kind::Dict: {
            if (key.is_string()) {
                const Value* v = object.as_dict().find(key.as_string());
                return v ? *v : get_attr(object, key.as_string(), false);
            }
            if (key.is_list() || key.is_dict() || key.is_undefined() || key.is_callable()) return Value();
            const Value* v = object.as_dict().find(dict_key(key));
            return v ? *v : Value();
        }
        default: return Value();
    }
}

Value get_slice(Renderer& r, const Value& object, const Value& start, const Value& stop, const Value& step) {
    if (object.is_undefined()) return Value();
    if (!object.is_list() && !object.is_string()) fail("'%s' object is not subscriptable", kind_name(object.kind()));
    auto given = [](const Value& v) { return !v.is_undefined() && !v.is_none(); };
    int64_t st = given(step) ? to_index(step, "slice step") : 1;
    if (st == 0) fail("slice step cannot be zero");
    std::vector<std::string_view> chars;
    if (object.is_string()) chars = utf8_chars(object.as_string());
    const int64_t n = object.is_string() ? int64_t(chars.size()) : int64_t(object.as_list().size());
    auto clamp = [&](const Value& v, int64_t fallback) {
        if (!given(v)) return fallback;
        int64_t i = to_index(v, "slice index");
        if (i < 0) i = std::max<int64_t>(i + n, st > 0 ? 0 : -1);
        if (i >= n) i = st > 0 ? n : n - 1;
        return i;
    };
    int64_t b = clamp(start, st > 0 ? 0 : n - 1);
    int64_t e = clamp(stop, st > 0 ? n : -1);
    std::vector<int64_t> picks;
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) picks.push_back(i);
    r.charge(picks.size());
    if (object.is_string()) {
        std::string out;
        for (int64_t i : picks) out += chars[size_t(i)];
        return Value::string(std::move(out));
    }
    List out;
    out.reserve(picks.size());
    for (int64_t i : picks) out.push_back(object.as_list()[size_t(i)]);
    return Value::list(std::move(out));
}

// ---- globals -------------------------------------------------------------

void install_globals(Scope& globals) {
    auto define = [&globals](const char* name, NativeFunction fn) {
        globals.vars.set(name, make_function(name, std::move(fn)));
    };
    define("range", [](const CallArgs& a, Renderer& r) {
        if (a.args.empty() || a.args.size() > 3) fail("range() expects 1 to 3 integer arguments");
        int64_t start = 0, stop = 0, step = 1;
        if (a.args.size() == 1) {
            stop = to_index(a.args[0], "range() argument");
        } else {
            start = to_index(a.args[0], "range() argument");
            stop = to_index(a.args[1], "range() argument");
            if (a.args.size() == 3) step = to_index(a.args[2], "range() argument");
        }
        if (step == 0) fail("range() arg 3 must not be zero");
        double count = std::max(0.0, std::ceil((double(stop) - double(start)) / double(step)));
        if (count > double(r.options().max_output_bytes / 16)) fail("range() of %.0f items is too long", count);
        check_list_size(r, size_t(count));
        List out;
        out.reserve(size_t(count));
        for (int64_t i = 0; i < int64_t(count); ++i) out.push_back(Value::integer(start + i * step));
        return Value::list(std::move(out));
    });
    auto make_mapping = [](bool is_namespace) {
        return [is_namespace](const CallArgs& a, Renderer&) {
            DictPtr d = make_dict();
            d->is_namespace = is_namespace;
            for (const Value& arg : a.args) {
                if (!arg.is_dict()) fail("%s() takes keyword arguments or a dict", is_namespace ? "namespace" : "dict");
                for (const auto& [k, v] : arg.as_dict().entries()) d->set(k, v);
            }
            for (const auto& [k, v] : a.kwargs) d->set(k, v);
            return Value::dict(d);
        };
    };
    define("namespace", make_mapping(true));
    define("dict", make_mapping(false));
    define("joiner", [](const CallArgs& a, Renderer&) {
        const Value* sep = a.get(0, "sep");
        auto used = std::make_shared<bool>(false);
        std::string s = sep ? to_str(*sep) : ", ";
        return make_function("joiner", [used, s](const CallArgs&, Renderer&) {
            if (!*used) {
                *used = true;
                return Value::string("");
            }
            return Value::string(s);
        });
    });
    define("raise_exception", [](const CallArgs& a, Renderer&) -> Value {
        throw TemplateRaised(a.args.empty() ? std::string("raise_exception() called") : to_str(a.args[0]));
    });
    define("strftime_now", [](const CallArgs& a, Renderer& r) {
        if (a.args.empty() || !a.args[0].is_string()) fail("strftime_now() expects a format string");
        const std::string& format = a.args[0].as_string();
        std::time_t t = r.now();
        std::tm tm{};
        localtime_r(&t, &tm);
        std::string buf(256 + format.size() * 64, '\0');  // %c and the like expand ~12x
        size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &tm);
        if (n == 0 && !format.empty()) fail("strftime_now(): cannot format '%s'", format.c_str());
        buf.resize(n);
        return Value::string(buf);
    });
}

}  // namespace moelite::jinja
