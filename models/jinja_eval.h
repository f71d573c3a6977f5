// The Jinja interpreter: a parsed template rendered with variables.
//
//   jinja::Template t(source);                  // throws Error on a syntax error
//   std::string s = t.render(variables_json);   // throws Error on a render error
//
// Behaviour follows Python Jinja2 as transformers configures it for chat
// templates (trim_blocks, lstrip_blocks, no autoescape, `raise_exception`,
// `strftime_now`, `tojson` = json.dumps(ensure_ascii=False), loop controls).
// Where the fixtures' reference, @huggingface/jinja, renders something that
// Jinja2 refuses, we render it too:
//   - `x.attr` / `x[key]` on undefined give undefined (Jinja2 raises);
//   - `str + number` concatenates;
//   - filters `map(attribute=...)` give a list (so `| tojson` works);
//   - a key of a dict wins over a method of the same name in `d.items`
//     (but `d.items()` calls the method).
// And where Jinja2 renders something the reference refuses, we render it:
// looping over undefined runs zero times, `reject` / `select` exist.
// Scoping is Jinja2's: `set` inside a for loop or macro stays there; a
// `namespace()` is the way to carry state out, and only a namespace takes
// `{% set ns.attr = ... %}` (the reference lets any dict be written, which
// would let a template change the caller's data). Integers are 64-bit: an
// overflow is an error, not a big integer. Tuples are lists, and print as such.
//
// Errors: syntax errors and runtime errors are moelite::Error with
// "line N: ..." in the message; `raise_exception(msg)` throws TemplateRaised
// whose message is msg alone. Hostile templates are stopped with an Error:
// nesting beyond the parser's limits, evaluation deeper than max_depth, more
// than max_steps of work (loop iterations and elements or bytes built), or
// output or any one string beyond max_output_bytes.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/jinja_parser.h"
#include "models/jinja_value.h"

namespace moelite::jinja {

struct RenderOptions {
    size_t max_output_bytes = size_t(64) << 20;  // the output, and any one string or list
    uint64_t max_steps = 10'000'000;             // loop iterations + elements copied + bytes/64 built
    int max_depth = 500;                         // nested expression/statement/macro evaluation
    std::function<std::time_t()> clock;          // for strftime_now; empty means the system clock
};

class Template {
public:
    explicit Template(std::string_view source, const LexOptions& options = {});

    // variables: a dict (or undefined for none).
    std::string render(const Value& variables, const RenderOptions& options = {}) const;
    // variables: a JSON object; key order is kept.
    std::string render_json(const nlohmann::ordered_json& variables, const RenderOptions& options = {}) const;

private:
    std::shared_ptr<const StmtList> body_;
};

// One level of variables. Lookups walk up to the globals.
struct Scope {
    std::shared_ptr<Scope> parent;
    Dict vars;

    const Value* find(const std::string& name) const;
};
using ScopePtr = std::shared_ptr<Scope>;

// The state of one render. Builtins (models/jinja_builtins.cpp) call back into it.
class Renderer {
public:
    explicit Renderer(const RenderOptions& options) : opt_(options) {}

    std::string run(const StmtList& body, const Value& variables);

    Value eval(const Expr& e, const ScopePtr& scope);
    Value call(const Value& callee, const CallArgs& args);

    // Work accounting; throws Error past the limits.
    void charge(uint64_t steps);
    void charge_bytes(size_t bytes) { charge(bytes / 64 + 1); }
    void check_size(size_t bytes, const char* what) const;
    std::time_t now() const;
    const RenderOptions& options() const { return opt_; }

private:
    enum class Flow { Normal, Break, Continue };

    RenderOptions opt_;
    uint64_t steps_ = 0;
    int depth_ = 0;
    int line_ = 0;  // of the node being evaluated, for error messages
    std::vector<std::weak_ptr<Dict>> assigned_namespaces_;

    struct DepthGuard {
        Renderer& r;
        explicit DepthGuard(Renderer& renderer);
        ~DepthGuard() { --r.depth_; }
    };

    Flow exec(const StmtList& body, const ScopePtr& scope, std::string& out);
    Flow exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
    void exec_set(const Stmt& s, const ScopePtr& scope, const Value& value);
    Value make_macro(const Stmt& s, const ScopePtr& scope);
    Value call_macro(const Stmt& s, const std::weak_ptr<Scope>& defined_in, const CallArgs& args);
    Value eval_call(const Expr& e, const ScopePtr& scope, const Value* caller);
    Value eval_filter(const Expr& e, const ScopePtr& scope, const Value* operand);
    CallArgs eval_args(const Expr& e, const ScopePtr& scope, size_t first);
    void append(std::string& out, const std::string& s);
};

}  // namespace moelite::jinja
