// The Jinja parser: recursive descent over the lexer's tokens. See
// models/jinja_parser.h for the grammar.
#include "models/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "core/error.h"

namespace moelite::jinja {

namespace {

ExprPtr make_expr(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
}

StmtPtr make_stmt(StmtKind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
}

std::string describe(const Token& t) {
    switch (t.kind) {
        case TokenKind::Name:
        case TokenKind::Op: return "'" + t.text + "'";
        case TokenKind::String: return "string literal";
        case TokenKind::Int:
        case TokenKind::Float: return "number " + t.text;
        default: return token_kind_name(t.kind);
    }
}

class Parser {
public:
    explicit Parser(const std::vector<Token>& tokens) : t_(tokens) { MOELITE_ASSERT(!t_.empty()); }

    StmtList run() {
        std::string ended;
        StmtList body = parse_body({}, &ended, "", 0);
        return body;
    }

private:
    const std::vector<Token>& t_;
    size_t i_ = 0;
    int depth_ = 0;
    int loop_depth_ = 0;

    struct DepthGuard {
        Parser& p;
        explicit DepthGuard(Parser& parser) : p(parser) {
            if (++p.depth_ > kMaxNesting) p.error(p.cur().line, "template nested too deeply");
        }
        ~DepthGuard() { --p.depth_; }
    };

    // Appends a child, keeping the depth of the tree bounded.
    void add(Expr& parent, ExprPtr child) {
        if (child) {
            parent.depth = std::max(parent.depth, child->depth + 1);
            if (parent.depth > kMaxExprDepth) error(parent.line, "expression nested too deeply");
        }
        parent.items.push_back(std::move(child));
    }
    void add_kwarg(Expr& parent, const std::string& key, ExprPtr value) {
        parent.depth = std::max(parent.depth, value->depth + 1);
        if (parent.depth > kMaxExprDepth) error(parent.line, "expression nested too deeply");
        parent.kwargs.emplace_back(key, std::move(value));
    }

    const Token& cur() const { return t_[i_]; }
    const Token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
    void advance() {
        if (i_ + 1 < t_.size()) ++i_;
    }
    bool is_op(const char* op) const { return cur().kind == TokenKind::Op && cur().text == op; }
    bool is_name(const char* name) const { return cur().kind == TokenKind::Name && cur().text == name; }
    bool accept_op(const char* op) {
        if (!is_op(op)) return false;
        advance();
        return true;
    }

    [[noreturn]] void error(int line, const std::string& message) const { fail("line %d: %s", line, message.c_str()); }
    [[noreturn]] void unexpected(const std::string& expected) const {
        error(cur().line, "unexpected " + describe(cur()) + ", expected " + expected);
    }
    void expect_op(const char* op) {
        if (!accept_op(op)) unexpected(std::string("'") + op + "'");
    }
    void expect_block_end() {
        if (cur().kind != TokenKind::BlockEnd) unexpected("end of tag '%}'");
        advance();
    }
    std::string expect_name() {
        if (cur().kind != TokenKind::Name) unexpected("a name");
        std::string name = cur().text;
        advance();
        return name;
    }

    // ---- statements ------------------------------------------------------

    // Parses statements until a block tag whose keyword is one of end_tags
    // (consumed, with the keyword stored in *ended), or the end of input
    // (an error when end_tags is not empty).
    StmtList parse_body(std::initializer_list<const char*> end_tags, std::string* ended, const char* opener,
                        int open_line) {
        DepthGuard guard(*this);
        StmtList body;
        while (true) {
            const Token& t = cur();
            switch (t.kind) {
                case TokenKind::Eof:
                    if (end_tags.size() != 0)
                        error(t.line, std::string("missing {% ") + *(end_tags.end() - 1) + " %} for the '" + opener +
                                          "' at line " + std::to_string(open_line));
                    return body;
                case TokenKind::Text: {
                    auto s = make_stmt(StmtKind::Text, t.line);
                    s->text = t.text;
                    body.push_back(std::move(s));
                    advance();
                    break;
                }
                case TokenKind::VarBegin: {
                    auto s = make_stmt(StmtKind::Output, t.line);
                    advance();
                    s->expr = parse_tuple_expression();
                    if (cur().kind != TokenKind::VarEnd) unexpected("end of print statement '}}'");
                    advance();
                    body.push_back(std::move(s));
                    break;
                }
                case TokenKind::BlockBegin: {
                    advance();
                    if (cur().kind != TokenKind::Name) unexpected("a tag name");
                    for (const char* end : end_tags) {
                        if (cur().text == end) {
                            *ended = end;
                            advance();
                            return body;
                        }
                    }
                    body.push_back(parse_statement());
                    break;
                }
                default: unexpected("text or a tag");
            }
        }
    }

    StmtPtr parse_statement() {
        const Token& t = cur();
        const std::string keyword = t.text;
        const int line = t.line;
        advance();
        if (keyword == "if") return parse_if(line);
        if (keyword == "for") return parse_for(line);
        if (keyword == "set") return parse_set(line);
        if (keyword == "macro") return parse_macro(line);
        if (keyword == "call") return parse_call_block(line);
        if (keyword == "filter") return parse_filter_block(line);
        if (keyword == "break" || keyword == "continue") {
            if (loop_depth_ == 0) error(line, "'" + keyword + "' outside of a loop");
            expect_block_end();
            return make_stmt(keyword == "break" ? StmtKind::Break : StmtKind::Continue, line);
        }
        if (keyword == "generation") {
            expect_block_end();
            auto s = make_stmt(StmtKind::Block, line);
            std::string ended;
            s->body = parse_body({"endgeneration"}, &ended, "generation", line);
            expect_block_end();
            return s;
        }
        if (keyword.rfind("end", 0) == 0 || keyword == "elif" || keyword == "else")
            error(line, "unexpected '" + keyword + "'");
        error(line, "unknown or unsupported tag '" + keyword + "'");
    }

    // After `if`; elif branches are kept flat so that long chains need no recursion.
    StmtPtr parse_if(int line) {
        auto s = make_stmt(StmtKind::If, line);
        std::string ended = "elif";
        while (ended == "elif") {
            ExprPtr cond = parse_expression();
            expect_block_end();
            StmtList body = parse_body({"elif", "else", "endif"}, &ended, "if", line);
            s->branches.emplace_back(std::move(cond), std::move(body));
        }
        if (ended == "else") {
            expect_block_end();
            s->else_body = parse_body({"endif"}, &ended, "if", line);
        }
        expect_block_end();
        return s;
    }

    StmtPtr parse_for(int line) {
        auto s = make_stmt(StmtKind::For, line);
        bool paren = accept_op("(");
        s->targets.push_back(expect_name());
        while (accept_op(",")) {
            if (cur().kind != TokenKind::Name || cur().text == "in") break;
            s->targets.push_back(expect_name());
        }
        if (paren) expect_op(")");
        if (!is_name("in")) unexpected("'in'");
        advance();
        s->expr = parse_or();
        if (is_name("if")) {
            advance();
            s->filter = parse_expression();
        }
        if (is_name("recursive")) error(cur().line, "recursive loops are not supported");
        expect_block_end();
        std::string ended;
        ++loop_depth_;
        s->body = parse_body({"else", "endfor"}, &ended, "for", line);
        --loop_depth_;
        if (ended == "else") {
            expect_block_end();
            s->else_body = parse_body({"endfor"}, &ended, "for", line);
        }
        expect_block_end();
        return s;
    }

    StmtPtr parse_set(int line) {
        std::vector<std::string> targets{expect_name()};
        bool attribute = false;
        if (accept_op(".")) {
            targets.push_back(expect_name());
            attribute = true;
        } else {
            while (accept_op(",")) targets.push_back(expect_name());
        }
        if (accept_op("=")) {
            auto s = make_stmt(StmtKind::Set, line);
            s->targets = std::move(targets);
            s->attribute_target = attribute;
            s->expr = parse_tuple_expression();
            expect_block_end();
            return s;
        }
        if (attribute || targets.size() != 1) unexpected("'='");
        auto s = make_stmt(StmtKind::SetBlock, line);
        s->targets = std::move(targets);
        if (is_op("|")) s->expr = parse_filter_chain();
        expect_block_end();
        std::string ended;
        s->body = parse_body({"endset"}, &ended, "set", line);
        expect_block_end();
        return s;
    }

    void parse_params(Stmt& s) {
        expect_op("(");
        while (!is_op(")")) {
            s.params.push_back(expect_name());
            s.defaults.push_back(accept_op("=") ? parse_expression() : nullptr);
            if (!accept_op(",")) break;
        }
        expect_op(")");
    }

    StmtPtr parse_macro(int line) {
        auto s = make_stmt(StmtKind::Macro, line);
        s->name = expect_name();
        parse_params(*s);
        expect_block_end();
        std::string ended;
        int saved_loops = loop_depth_;
        loop_depth_ = 0;
        s->body = parse_body({"endmacro"}, &ended, "macro", line);
        loop_depth_ = saved_loops;
        if (cur().kind == TokenKind::Name && cur().text == s->name) advance();
        expect_block_end();
        return s;
    }

    StmtPtr parse_call_block(int line) {
        auto s = make_stmt(StmtKind::CallBlock, line);
        if (is_op("(")) parse_params(*s);
        s->expr = parse_expression();
        if (s->expr->kind != ExprKind::Call) error(line, "expected a macro call after 'call'");
        expect_block_end();
        std::string ended;
        s->body = parse_body({"endcall"}, &ended, "call", line);
        expect_block_end();
        return s;
    }

    StmtPtr parse_filter_block(int line) {
        auto s = make_stmt(StmtKind::FilterBlock, line);
        s->expr = parse_filter_chain_names(nullptr);
        expect_block_end();
        std::string ended;
        s->body = parse_body({"endfilter"}, &ended, "filter", line);
        expect_block_end();
        return s;
    }

    // `| f(args) | g` over a null operand (set blocks).
    ExprPtr parse_filter_chain() {
        ExprPtr node;
        while (is_op("|")) {
            advance();
            node = parse_filter_chain_names(std::move(node), true);
        }
        return node;
    }

    // `f(args) | g ...` over `operand`; with single, stops after one filter.
    ExprPtr parse_filter_chain_names(ExprPtr operand, bool single = false) {
        while (true) {
            auto f = make_expr(ExprKind::Filter, cur().line);
            f->name = expect_name();
            while (accept_op(".")) {
                f->name += '.';
                f->name += expect_name();
            }
            add(*f, std::move(operand));
            if (is_op("(")) parse_call_args(*f);
            operand = std::move(f);
            if (single || !accept_op("|")) return operand;
        }
    }

    // ---- expressions -----------------------------------------------------

    // An expression, or several separated by commas (a tuple).
    ExprPtr parse_tuple_expression() {
        int line = cur().line;
        ExprPtr first = parse_expression();
        if (!is_op(",")) return first;
        auto tuple = make_expr(ExprKind::Tuple, line);
        add(*tuple, std::move(first));
        while (accept_op(",")) {
            if (cur().kind == TokenKind::VarEnd || cur().kind == TokenKind::BlockEnd) break;
            add(*tuple, parse_expression());
        }
        return tuple;
    }

    ExprPtr parse_expression() {
        DepthGuard guard(*this);
        ExprPtr node = parse_or();
        while (is_name("if")) {
            auto cond = make_expr(ExprKind::Cond, cur().line);
            advance();
            add(*cond, std::move(node));
            add(*cond, parse_or());
            if (is_name("else")) {
                advance();
                add(*cond, parse_expression());
            } else {
                add(*cond, nullptr);
            }
            node = std::move(cond);
        }
        return node;
    }

    ExprPtr binary(const std::string& op, ExprPtr left, ExprPtr right, int line) {
        auto e = make_expr(ExprKind::Binary, line);
        e->op = op;
        add(*e, std::move(left));
        add(*e, std::move(right));
        return e;
    }

    ExprPtr parse_or() {
        ExprPtr left = parse_and();
        while (is_name("or")) {
            int line = cur().line;
            advance();
            left = binary("or", std::move(left), parse_and(), line);
        }
        return left;
    }

    ExprPtr parse_and() {
        ExprPtr left = parse_not();
        while (is_name("and")) {
            int line = cur().line;
            advance();
            left = binary("and", std::move(left), parse_not(), line);
        }
        return left;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            DepthGuard guard(*this);
            auto e = make_expr(ExprKind::Unary, cur().line);
            advance();
            e->op = "not";
            add(*e, parse_not());
            return e;
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        int line = cur().line;
        ExprPtr first = parse_math1();
        ExprPtr cmp;
        while (true) {
            std::string op;
            if (cur().kind == TokenKind::Op &&
                (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                 cur().text == ">" || cur().text == ">=")) {
                op = cur().text;
                advance();
            } else if (is_name("in")) {
                op = "in";
                advance();
            } else if (is_name("not") && peek().kind == TokenKind::Name && peek().text == "in") {
                op = "not in";
                advance();
                advance();
            } else {
                break;
            }
            if (!cmp) {
                cmp = make_expr(ExprKind::Compare, line);
                add(*cmp, std::move(first));
            }
            cmp->compare_ops.push_back(op);
            add(*cmp, parse_math1());
        }
        return cmp ? std::move(cmp) : std::move(first);
    }

    ExprPtr parse_math1() {
        ExprPtr left = parse_concat();
        while (is_op("+") || is_op("-")) {
            std::string op = cur().text;
            int line = cur().line;
            advance();
            left = binary(op, std::move(left), parse_concat(), line);
        }
        return left;
    }

    ExprPtr parse_concat() {
        ExprPtr left = parse_math2();
        while (is_op("~")) {
            int line = cur().line;
            advance();
            left = binary("~", std::move(left), parse_math2(), line);
        }
        return left;
    }

    ExprPtr parse_math2() {
        ExprPtr left = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            std::string op = cur().text;
            int line = cur().line;
            advance();
            left = binary(op, std::move(left), parse_pow(), line);
        }
        return left;
    }

    ExprPtr parse_pow() {
        ExprPtr left = parse_unary(true);
        while (is_op("**")) {
            int line = cur().line;
            advance();
            left = binary("**", std::move(left), parse_unary(true), line);
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard(*this);
        ExprPtr node;
        if (is_op("-") || is_op("+")) {
            node = make_expr(ExprKind::Unary, cur().line);
            node->op = cur().text;
            advance();
            add(*node, parse_unary(false));
        } else {
            node = parse_primary();
        }
        node = parse_postfix(std::move(node));
        if (with_filter) node = parse_filter_expr(std::move(node));
        return node;
    }

    ExprPtr parse_primary() {
        const Token& t = cur();
        switch (t.kind) {
            case TokenKind::Name: {
                auto e = make_expr(ExprKind::Literal, t.line);
                if (t.text == "true" || t.text == "True") e->literal = Value::boolean(true);
                else if (t.text == "false" || t.text == "False") e->literal = Value::boolean(false);
                else if (t.text == "none" || t.text == "None") e->literal = Value::none();
                else {
                    e->kind = ExprKind::Name;
                    e->name = t.text;
                }
                advance();
                return e;
            }
            case TokenKind::String: {
                auto e = make_expr(ExprKind::Literal, t.line);
                std::string s;
                while (cur().kind == TokenKind::String) {  // adjacent literals concatenate
                    s += cur().text;
                    advance();
                }
                e->literal = Value::string(std::move(s));
                return e;
            }
            case TokenKind::Int:
            case TokenKind::Float: {
                auto e = make_expr(ExprKind::Literal, t.line);
                e->literal = t.kind == TokenKind::Int ? Value::integer(t.int_value) : Value::number(t.float_value);
                advance();
                return e;
            }
            case TokenKind::Op: {
                if (t.text == "(") return parse_paren();
                if (t.text == "[") return parse_list();
                if (t.text == "{") return parse_dict();
                break;
            }
            default: break;
        }
        unexpected("an expression");
    }

    ExprPtr parse_paren() {
        int line = cur().line;
        advance();
        if (accept_op(")")) return make_expr(ExprKind::Tuple, line);
        ExprPtr first = parse_expression();
        if (accept_op(")")) return first;
        auto tuple = make_expr(ExprKind::Tuple, line);
        add(*tuple, std::move(first));
        while (accept_op(",")) {
            if (is_op(")")) break;
            add(*tuple, parse_expression());
        }
        expect_op(")");
        return tuple;
    }

    ExprPtr parse_list() {
        auto e = make_expr(ExprKind::List, cur().line);
        advance();
        while (!is_op("]")) {
            add(*e, parse_expression());
            if (!accept_op(",")) break;
        }
        expect_op("]");
        return e;
    }

    ExprPtr parse_dict() {
        auto e = make_expr(ExprKind::Dict, cur().line);
        advance();
        while (!is_op("}")) {
            add(*e, parse_expression());
            expect_op(":");
            add(*e, parse_expression());
            if (!accept_op(",")) break;
        }
        expect_op("}");
        return e;
    }

    ExprPtr parse_postfix(ExprPtr node) {
        while (true) {
            if (is_op(".")) {
                int line = cur().line;
                advance();
                if (cur().kind == TokenKind::Int) {  // x.0 is x[0]
                    auto e = make_expr(ExprKind::GetItem, line);
                    add(*e, std::move(node));
                    auto index = make_expr(ExprKind::Literal, line);
                    index->literal = Value::integer(cur().int_value);
                    advance();
                    add(*e, std::move(index));
                    node = std::move(e);
                    continue;
                }
                auto e = make_expr(ExprKind::GetAttr, line);
                add(*e, std::move(node));
                e->name = expect_name();
                node = std::move(e);
            } else if (is_op("[")) {
                node = parse_subscript(std::move(node));
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr object) {
        DepthGuard guard(*this);
        int line = cur().line;
        advance();
        ExprPtr start;
        if (!is_op(":")) start = parse_expression();
        if (!is_op(":")) {
            expect_op("]");
            auto e = make_expr(ExprKind::GetItem, line);
            add(*e, std::move(object));
            add(*e, std::move(start));
            return e;
        }
        advance();
        auto e = make_expr(ExprKind::Slice, line);
        add(*e, std::move(object));
        add(*e, std::move(start));
        add(*e, !is_op(":") && !is_op("]") ? parse_expression() : nullptr);
        ExprPtr step;
        if (accept_op(":") && !is_op("]")) step = parse_expression();
        add(*e, std::move(step));
        expect_op("]");
        return e;
    }

    // Arguments `(a, b, k=v)` appended to node's items and kwargs.
    void parse_call_args(Expr& node) {
        DepthGuard guard(*this);
        expect_op("(");
        while (!is_op(")")) {
            if (cur().kind == TokenKind::Name && peek().kind == TokenKind::Op && peek().text == "=") {
                std::string key = cur().text;
                advance();
                advance();
                add_kwarg(node, key, parse_expression());
            } else {
                if (!node.kwargs.empty()) error(cur().line, "positional argument after keyword argument");
                add(node, parse_expression());
            }
            if (!accept_op(",")) break;
        }
        expect_op(")");
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto e = make_expr(ExprKind::Call, cur().line);
        add(*e, std::move(callee));
        parse_call_args(*e);
        return e;
    }

    ExprPtr parse_filter_expr(ExprPtr node) {
        while (true) {
            if (is_op("|")) {
                advance();
                node = parse_filter_chain_names(std::move(node), true);
            } else if (is_name("is")) {
                node = parse_test(std::move(node));
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    ExprPtr parse_test(ExprPtr operand) {
        auto e = make_expr(ExprKind::Test, cur().line);
        advance();
        if (is_name("not")) {
            e->negated = true;
            advance();
        }
        e->name = expect_name();
        while (accept_op(".")) {
            e->name += '.';
            e->name += expect_name();
        }
        add(*e, std::move(operand));
        if (is_op("(")) {
            parse_call_args(*e);
        } else if (starts_test_argument()) {
            // `x is divisibleby 3`, `x is sameas none`: one argument without parentheses
            ExprPtr arg = parse_postfix(parse_primary());
            add(*e, std::move(arg));
        }
        return e;
    }

    bool starts_test_argument() const {
        const Token& t = cur();
        if (t.kind == TokenKind::String || t.kind == TokenKind::Int || t.kind == TokenKind::Float) return true;
        if (t.kind == TokenKind::Op) return t.text == "[" || t.text == "{";
        if (t.kind != TokenKind::Name) return false;
        static const char* const stop[] = {"else", "or", "and", "if", "in", "is", "not", "recursive"};
        for (const char* s : stop)
            if (t.text == s) return false;
        return true;
    }
};

}  // namespace

StmtList parse(const std::vector<Token>& tokens) { return Parser(tokens).run(); }

StmtList parse_template(std::string_view source, const LexOptions& options) { return parse(lex(source, options)); }

}  // namespace moelite::jinja
