// The Jinja lexer. See models/jinja_lexer.h for the whitespace rules.
#include "models/jinja_lexer.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace moelite::jinja {

const char* token_kind_name(TokenKind kind) {
    switch (kind) {
        case TokenKind::Text: return "text";
        case TokenKind::VarBegin: return "'{{'";
        case TokenKind::VarEnd: return "'}}'";
        case TokenKind::BlockBegin: return "'{%'";
        case TokenKind::BlockEnd: return "'%}'";
        case TokenKind::Name: return "name";
        case TokenKind::String: return "string";
        case TokenKind::Int: return "integer";
        case TokenKind::Float: return "float";
        case TokenKind::Op: return "operator";
        case TokenKind::Eof: return "end of template";
    }
    return "?";
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

class Lexer {
public:
    Lexer(std::string_view src, const LexOptions& options) : src_(src), opt_(options) {
        if (!opt_.keep_trailing_newline && !src_.empty() && src_.back() == '\n') src_.remove_suffix(1);
    }

    std::vector<Token> run() {
        size_t pos = 0;
        while (true) {
            size_t start = find_tag(pos);
            char kind = start == std::string_view::npos ? 0 : src_[start + 1];
            std::string text(src_.substr(pos, start == std::string_view::npos ? std::string_view::npos : start - pos));
            int text_line = line_;
            bool at_line_start = pos == 0;
            if (strip_next_) {
                size_t k = 0;
                while (k < text.size() && is_space(text[k])) ++k;
                text.erase(0, k);
            } else if (trim_next_ && !text.empty() && text[0] == '\n') {
                text.erase(0, 1);
                at_line_start = true;
            }
            count_lines(pos, start == std::string_view::npos ? src_.size() : start);
            if (start == std::string_view::npos) {
                emit_text(std::move(text), text_line);
                break;
            }
            char modifier = start + 2 < src_.size() ? src_[start + 2] : 0;
            bool strip_before = modifier == '-';
            bool keep_before = modifier == '+';
            if (strip_before) {
                while (!text.empty() && is_space(text.back())) text.pop_back();
            } else if (kind != '{' && opt_.lstrip_blocks && !keep_before) {
                size_t k = text.size();
                while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
                if ((k > 0 && text[k - 1] == '\n') || (k == 0 && at_line_start)) text.resize(k);
            }
            emit_text(std::move(text), text_line);
            size_t body = start + 2 + ((strip_before || keep_before) ? 1 : 0);
            if (kind == '#') {
                pos = lex_comment(start, body);
            } else if (kind == '%' && is_raw_tag(body)) {
                pos = lex_raw(body);
            } else {
                pos = lex_tag(kind, body);
            }
        }
        Token eof;
        eof.kind = TokenKind::Eof;
        eof.line = line_;
        tokens_.push_back(eof);
        return std::move(tokens_);
    }

private:
    std::string_view src_;
    LexOptions opt_;
    std::vector<Token> tokens_;
    int line_ = 1;
    bool strip_next_ = false;  // the previous tag ended with '-'
    bool trim_next_ = false;   // the previous tag was a block or comment (trim_blocks)

    [[noreturn]] void error(int line, const std::string& message) { fail("line %d: %s", line, message.c_str()); }

    size_t find_tag(size_t pos) const {
        while (true) {
            size_t p = src_.find('{', pos);
            if (p == std::string_view::npos || p + 1 >= src_.size()) return std::string_view::npos;
            char c = src_[p + 1];
            if (c == '{' || c == '%' || c == '#') return p;
            pos = p + 1;
        }
    }

    void count_lines(size_t from, size_t to) {
        for (size_t i = from; i < to && i < src_.size(); ++i)
            if (src_[i] == '\n') ++line_;
    }

    void emit_text(std::string text, int line) {
        if (text.empty()) return;
        Token t;
        t.kind = TokenKind::Text;
        t.text = std::move(text);
        t.line = line;
        tokens_.push_back(std::move(t));
    }

    void set_after(char kind, char modifier) {
        strip_next_ = modifier == '-';
        trim_next_ = kind != '{' && opt_.trim_blocks && modifier != '+';
    }

    size_t lex_comment(size_t start, size_t body) {
        size_t end = src_.find("#}", body);
        if (end == std::string_view::npos) error(line_, "unterminated comment");
        char modifier = end > body && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
        count_lines(start, end + 2);
        set_after('#', modifier);
        return end + 2;
    }

    // `raw` alone in a block tag: {% raw %}, {%- raw -%}.
    size_t match_word_tag(size_t body, const char* word) const {
        size_t p = body;
        while (p < src_.size() && is_space(src_[p])) ++p;
        size_t n = std::strlen(word);
        if (src_.substr(p, n) != word) return 0;
        p += n;
        if (p < src_.size() && is_name_char(src_[p])) return 0;
        while (p < src_.size() && is_space(src_[p])) ++p;
        if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
        if (src_.substr(p, 2) != "%}") return 0;
        return p + 2;
    }

    bool is_raw_tag(size_t body) const { return match_word_tag(body, "raw") != 0; }

    size_t lex_raw(size_t body) {
        size_t after = match_word_tag(body, "raw");
        set_after('%', src_[after - 3]);
        size_t search = after;
        while (true) {
            size_t p = src_.find("{%", search);
            if (p == std::string_view::npos) error(line_, "missing {% endraw %}");
            char modifier = p + 2 < src_.size() ? src_[p + 2] : 0;
            size_t inner = p + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
            size_t end = match_word_tag(inner, "endraw");
            if (!end) {
                search = p + 2;
                continue;
            }
            std::string text(src_.substr(after, p - after));
            int text_line = line_;
            if (strip_next_) {
                size_t k = 0;
                while (k < text.size() && is_space(text[k])) ++k;
                text.erase(0, k);
            } else if (trim_next_ && !text.empty() && text[0] == '\n') {
                text.erase(0, 1);
            }
            if (modifier == '-') {
                while (!text.empty() && is_space(text.back())) text.pop_back();
            }
            emit_text(std::move(text), text_line);
            count_lines(body, end);
            set_after('%', src_[end - 3]);
            return end;
        }
    }

    void push(TokenKind kind, std::string text, int line) {
        Token t;
        t.kind = kind;
        t.text = std::move(text);
        t.line = line;
        tokens_.push_back(std::move(t));
    }

    size_t lex_tag(char kind, size_t p) {
        const int open_line = line_;
        push(kind == '{' ? TokenKind::VarBegin : TokenKind::BlockBegin, "", line_);
        const char close = kind == '{' ? '}' : '%';
        int depth = 0;
        while (true) {
            while (p < src_.size() && is_space(src_[p])) {
                if (src_[p] == '\n') ++line_;
                ++p;
            }
            if (p >= src_.size())
                error(open_line, std::string("unterminated tag: expected '") + close + "}'" +
                                     (depth > 0 ? " (a bracket is left open)" : ""));
            char c = src_[p];
            if (depth == 0) {
                // closing marker, with an optional whitespace-control modifier
                char modifier = 0;
                size_t q = p;
                if ((c == '-' || (c == '+' && kind == '%')) && p + 1 < src_.size() && src_[p + 1] == close) {
                    modifier = c;
                    ++q;
                }
                if (src_.substr(q, 2) == std::string{close, '}'}) {
                    push(kind == '{' ? TokenKind::VarEnd : TokenKind::BlockEnd, "", line_);
                    set_after(kind, modifier);
                    return q + 2;
                }
            }
            if (c == '\'' || c == '"') {
                p = lex_string(p);
            } else if (is_digit(c)) {
                p = lex_number(p);
            } else if (is_name_start(c)) {
                size_t q = p;
                while (q < src_.size() && is_name_char(src_[q])) ++q;
                push(TokenKind::Name, std::string(src_.substr(p, q - p)), line_);
                p = q;
            } else {
                static const char* const two[] = {"//", "**", "==", "!=", "<=", ">="};
                std::string op;
                for (const char* t : two)
                    if (src_.substr(p, 2) == t) op = t;
                if (op.empty()) {
                    if (!std::strchr("+-*/%~<>=()[]{},.:|", c)) error(line_, std::string("unexpected character '") + c + "'");
                    op = std::string(1, c);
                }
                if (op == "(" || op == "[" || op == "{") ++depth;
                if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
                push(TokenKind::Op, op, line_);
                p += op.size();
            }
        }
    }

    size_t lex_string(size_t p) {
        const char quote = src_[p];
        const int start_line = line_;
        std::string out;
        size_t i = p + 1;
        while (true) {
            if (i >= src_.size()) error(start_line, "unterminated string literal");
            char c = src_[i];
            if (c == quote) break;
            if (c == '\n') ++line_;
            if (c != '\\') {
                out += c;
                ++i;
                continue;
            }
            if (i + 1 >= src_.size()) error(start_line, "unterminated string literal");
            char e = src_[i + 1];
            i += 2;
            switch (e) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'a': out += '\a'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'v': out += '\v'; break;
                case '\\': out += '\\'; break;
                case '\'': out += '\''; break;
                case '"': out += '"'; break;
                case '\n': ++line_; break;  // line continuation
                case 'x':
                case 'u':
                case 'U': {
                    int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    uint32_t cp = 0;
                    for (int k = 0; k < digits; ++k) {
                        int h = i + size_t(k) < src_.size() ? hex_value(src_[i + size_t(k)]) : -1;
                        if (h < 0) error(line_, std::string("truncated \\") + e + " escape in string literal");
                        cp = cp * 16 + uint32_t(h);
                    }
                    if (cp > 0x10ffff) error(line_, "invalid code point in string literal");
                    i += size_t(digits);
                    append_utf8(out, cp);
                    break;
                }
                default:
                    if (e >= '0' && e <= '7') {
                        uint32_t cp = uint32_t(e - '0');
                        for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k, ++i)
                            cp = cp * 8 + uint32_t(src_[i] - '0');
                        append_utf8(out, cp);
                    } else {
                        out += '\\';  // unknown escapes stay as written, as in Python
                        out += e;
                        if (e == '\n') ++line_;
                    }
            }
        }
        push(TokenKind::String, std::move(out), start_line);
        return i + 1;
    }

    size_t lex_number(size_t p) {
        size_t q = p;
        auto digits = [&] {
            while (q < src_.size() && (is_digit(src_[q]) || (src_[q] == '_' && q + 1 < src_.size() && is_digit(src_[q + 1]))))
                ++q;
        };
        digits();
        bool is_float = false;
        if (q + 1 < src_.size() && src_[q] == '.' && is_digit(src_[q + 1])) {
            is_float = true;
            ++q;
            digits();
        }
        if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
            size_t r = q + 1;
            if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
            if (r < src_.size() && is_digit(src_[r])) {
                is_float = true;
                q = r;
                digits();
            }
        }
        std::string text;
        for (size_t i = p; i < q; ++i)
            if (src_[i] != '_') text += src_[i];
        Token t;
        t.line = line_;
        t.text = text;
        if (is_float) {
            t.kind = TokenKind::Float;
            t.float_value = std::strtod(text.c_str(), nullptr);
        } else {
            t.kind = TokenKind::Int;
            errno = 0;
            char* end = nullptr;
            long long v = std::strtoll(text.c_str(), &end, 10);
            if (errno == ERANGE) error(line_, "integer literal out of range: " + text);
            t.int_value = v;
        }
        tokens_.push_back(std::move(t));
        return q;
    }
};

}  // namespace

std::vector<Token> lex(std::string_view source, const LexOptions& options) { return Lexer(source, options).run(); }

}  // namespace moelite::jinja
