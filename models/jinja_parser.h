// The Jinja parser: tokens -> a syntax tree of statements and expressions.
//
// Grammar and precedence follow Jinja2, lowest first:
//   `a if c else b`, `or`, `and`, `not`, comparisons (`==` `!=` `<` `<=` `>`
//   `>=` `in` `not in`, chainable), `+` `-`, `~`, `*` `/` `//` `%`, `**`,
//   unary `-` `+`, then postfix: `.attr`, `[index]`, `[a:b:c]`, `(args)`,
//   `| filter(args)`, `is [not] test(args)`.
// So `'a' + x | tojson` filters only x, and `not x is defined` is
// `not (x is defined)`.
//
// Statements: if/elif/else, for (tuple targets, `if` filter, `else`), set
// (name, tuple, `ns.attr`, and the block form `{% set x %}...{% endset %}`),
// macro, call blocks, filter blocks, break/continue, generation blocks (kept
// as plain bodies), and `{# #}` comments (dropped by the lexer).
//
// Nodes are plain structs; which fields a node uses depends on its kind, as
// listed next to each kind. Nesting deeper than kMaxNesting is a syntax error,
// so a hostile template cannot exhaust the stack while parsing.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "models/jinja_lexer.h"
#include "models/jinja_value.h"

namespace moelite::jinja {

// Limits that keep recursion (parsing, evaluating, destroying the tree) bounded.
constexpr int kMaxNesting = 200;    // open blocks plus bracket/operator nesting while parsing
constexpr int kMaxExprDepth = 400;  // depth of an expression tree (long `a + b + ...` chains count)

enum class ExprKind {
    Literal,  // literal
    Name,     // name
    List,     // items
    Tuple,    // items
    Dict,     // items: key0, value0, key1, value1, ...
    GetAttr,  // items[0] object, name
    GetItem,  // items[0] object, items[1] key
    Slice,    // items[0] object, items[1..3] start, stop, step (each may be null)
    Call,     // items[0] callee, items[1..] positional args, kwargs
    Filter,   // items[0] operand (null inside a filter block), name, items[1..] args, kwargs
    Test,     // items[0] operand, name, items[1..] args, kwargs, negated
    Unary,    // op ("-", "+", "not"), items[0]
    Binary,   // op ("+", "-", "*", "/", "//", "%", "**", "~", "and", "or"), items[0..1]
    Compare,  // items[0..n], compare_ops[n-1] ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
    Cond,     // items[0] value, items[1] condition, items[2] else value (may be null)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    ExprKind kind = ExprKind::Literal;
    int line = 0;
    int depth = 1;  // of the tree below, this node included
    Value literal;
    std::string name;
    std::string op;
    bool negated = false;
    std::vector<std::string> compare_ops;
    std::vector<ExprPtr> items;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

enum class StmtKind {
    Text,         // text
    Output,       // expr
    If,           // branches (condition, body) for if and each elif, else_body
    For,          // targets, expr (iterable), filter (may be null), body, else_body
    Set,          // targets (names, or object + attribute when attribute_target), expr
    SetBlock,     // targets (one name), body, expr (filter chain, may be null)
    Macro,        // name, params, defaults (null where none), body
    CallBlock,    // expr (the call), params and defaults of `caller`, body
    FilterBlock,  // expr (filter chain over a null operand), body
    Break,
    Continue,
    Block,        // body (generation blocks and the like: rendered in place)
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct Stmt {
    StmtKind kind = StmtKind::Text;
    int line = 0;
    std::string text;
    std::string name;
    ExprPtr expr;
    ExprPtr filter;
    std::vector<std::string> targets;
    bool attribute_target = false;
    std::vector<std::string> params;
    std::vector<ExprPtr> defaults;
    StmtList body;
    StmtList else_body;
    std::vector<std::pair<ExprPtr, StmtList>> branches;
};

// Throws moelite::Error("line N: ...") on a syntax error.
StmtList parse(const std::vector<Token>& tokens);
StmtList parse_template(std::string_view source, const LexOptions& options = {});

}  // namespace moelite::jinja
