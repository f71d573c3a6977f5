// The Jinja interpreter: statements, expressions, scopes, macros, limits.
// See models/jinja_eval.h for the semantics.
#include "models/jinja_eval.h"

#include <nlohmann/json.hpp>

#include "models/jinja_builtins.h"

namespace moelite::jinja {

const Value* Scope::find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get())
        if (const Value* v = s->vars.find(name)) return v;
    return nullptr;
}

Template::Template(std::string_view source, const LexOptions& options)
    : body_(std::make_shared<const StmtList>(parse_template(source, options))) {}

std::string Template::render(const Value& variables, const RenderOptions& options) const {
    Renderer renderer(options);
    return renderer.run(*body_, variables);
}

std::string Template::render_json(const nlohmann::ordered_json& variables, const RenderOptions& options) const {
    if (!variables.is_object() && !variables.is_null()) fail("template variables must be a JSON object");
    return render(from_json(variables), options);
}

Renderer::DepthGuard::DepthGuard(Renderer& renderer) : r(renderer) {
    if (++r.depth_ > r.opt_.max_depth) {
        --r.depth_;
        fail("template evaluation nested too deeply (more than %d levels)", r.opt_.max_depth);
    }
}

void Renderer::charge(uint64_t steps) {
    steps_ += steps;
    if (steps_ > opt_.max_steps)
        fail("template does too much work (more than %llu steps: loop iterations and values built)",
             (unsigned long long)opt_.max_steps);
}

void Renderer::check_size(size_t bytes, const char* what) const {
    if (bytes > opt_.max_output_bytes)
        fail("%s larger than %zu bytes", what, opt_.max_output_bytes);
}

std::time_t Renderer::now() const { return opt_.clock ? opt_.clock() : std::time(nullptr); }

void Renderer::append(std::string& out, const std::string& s) {
    charge_bytes(s.size());
    check_size(out.size() + s.size(), "template output");
    out += s;
}

std::string Renderer::run(const StmtList& body, const Value& variables) {
    auto globals = std::make_shared<Scope>();
    install_globals(*globals);
    auto top = std::make_shared<Scope>();
    top->parent = globals;
    if (variables.is_dict()) {
        for (const auto& [k, v] : variables.as_dict().entries()) top->vars.set(k, v);
    } else if (!variables.is_undefined() && !variables.is_none()) {
        fail("template variables must be a dict");
    }
    // Only namespaces can be assigned to, so only they can hold themselves in
    // a cycle; empty the ones still alive at the end so that nothing leaks.
    struct Cleanup {
        Renderer& r;
        ~Cleanup() {
            std::vector<Value> dead;
            for (const auto& weak : r.assigned_namespaces_)
                if (DictPtr d = weak.lock()) d->take_values(dead);
        }
    } cleanup{*this};
    std::string out;
    try {
        exec(body, top, out);
    } catch (const TemplateRaised&) {
        throw;
    } catch (const Error& e) {
        if (line_ > 0) fail("line %d: %s", line_, e.what());
        throw;
    }
    return out;
}

Renderer::Flow Renderer::exec(const StmtList& body, const ScopePtr& scope, std::string& out) {
    DepthGuard guard(*this);
    for (const StmtPtr& sp : body) {
        const Stmt& s = *sp;
        line_ = s.line;
        switch (s.kind) {
            case StmtKind::Text: append(out, s.text); break;
            case StmtKind::Output: {
                Value v = eval(*s.expr, scope);
                append(out, to_str(v));
                break;
            }
            case StmtKind::If: {
                const StmtList* chosen = &s.else_body;
                for (const auto& [cond, branch] : s.branches) {
                    if (truthy(eval(*cond, scope))) {
                        chosen = &branch;
                        break;
                    }
                }
                Flow f = exec(*chosen, scope, out);
                if (f != Flow::Normal) return f;
                break;
            }
            case StmtKind::For: {
                Flow f = exec_for(s, scope, out);
                if (f != Flow::Normal) return f;
                break;
            }
            case StmtKind::Set: exec_set(s, scope, eval(*s.expr, scope)); break;
            case StmtKind::SetBlock: {
                std::string captured;
                auto inner = std::make_shared<Scope>();
                inner->parent = scope;
                exec(s.body, inner, captured);
                Value v = Value::string(std::move(captured));
                if (s.expr) v = eval_filter(*s.expr, scope, &v);
                exec_set(s, scope, v);
                break;
            }
            case StmtKind::Macro: scope->vars.set(s.name, make_macro(s, scope)); break;
            case StmtKind::CallBlock: {
                Value caller = make_macro(s, scope);
                append(out, to_str(eval_call(*s.expr, scope, &caller)));
                break;
            }
            case StmtKind::FilterBlock: {
                std::string captured;
                exec(s.body, scope, captured);
                Value v = Value::string(std::move(captured));
                append(out, to_str(eval_filter(*s.expr, scope, &v)));
                break;
            }
            case StmtKind::Break: return Flow::Break;
            case StmtKind::Continue: return Flow::Continue;
            case StmtKind::Block: {
                Flow f = exec(s.body, scope, out);
                if (f != Flow::Normal) return f;
                break;
            }
        }
    }
    return Flow::Normal;
}

namespace {

void bind_targets(Scope& scope, const std::vector<std::string>& targets, const Value& item) {
    if (targets.size() == 1) {
        scope.vars.set(targets[0], item);
        return;
    }
    if (!item.is_list())
        fail("cannot unpack a value of type '%s' into %zu names", kind_name(item.kind()), targets.size());
    const List& parts = item.as_list();
    if (parts.size() != targets.size())
        fail("cannot unpack %zu values into %zu names", parts.size(), targets.size());
    for (size_t i = 0; i < targets.size(); ++i) scope.vars.set(targets[i], parts[i]);
}

}  // namespace

Renderer::Flow Renderer::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
    List items = iterate(eval(*s.expr, scope));
    charge(items.size());
    if (s.filter) {
        List kept;
        for (const Value& item : items) {
            charge(1);
            auto probe = std::make_shared<Scope>();
            probe->parent = scope;
            bind_targets(*probe, s.targets, item);
            if (truthy(eval(*s.filter, probe))) kept.push_back(item);
        }
        items = std::move(kept);
    }
    const int64_t n = int64_t(items.size());
    // One loop.cycle for the whole loop, reading the current index.
    auto current = std::make_shared<int64_t>(0);
    Value cycle = make_function("loop.cycle", [current](const CallArgs& args, Renderer&) {
        if (args.args.empty()) fail("loop.cycle() needs at least one argument");
        return args.args[size_t(*current) % args.args.size()];
    });
    for (int64_t i = 0; i < n; ++i) {
        charge(1);
        *current = i;
        auto iteration = std::make_shared<Scope>();
        iteration->parent = scope;
        bind_targets(*iteration, s.targets, items[size_t(i)]);
        DictPtr loop = make_dict();
        loop->reserve(12);
        loop->set("index0", Value::integer(i));
        loop->set("index", Value::integer(i + 1));
        loop->set("revindex0", Value::integer(n - i - 1));
        loop->set("revindex", Value::integer(n - i));
        loop->set("first", Value::boolean(i == 0));
        loop->set("last", Value::boolean(i == n - 1));
        loop->set("length", Value::integer(n));
        loop->set("previtem", i > 0 ? items[size_t(i - 1)] : Value());
        loop->set("nextitem", i + 1 < n ? items[size_t(i + 1)] : Value());
        loop->set("depth", Value::integer(1));
        loop->set("depth0", Value::integer(0));
        loop->set("cycle", cycle);
        iteration->vars.set("loop", Value::dict(loop));
        Flow f = exec(s.body, iteration, out);
        if (f == Flow::Break) break;
    }
    if (n == 0) return exec(s.else_body, scope, out);
    return Flow::Normal;
}

void Renderer::exec_set(const Stmt& s, const ScopePtr& scope, const Value& value) {
    if (s.attribute_target) {
        const Value* object = scope->find(s.targets[0]);
        if (!object || !object->is_dict() || !object->as_dict().is_namespace)
            fail("cannot assign attribute '%s' on '%s', which is not a namespace", s.targets[1].c_str(),
                 s.targets[0].c_str());
        const DictPtr& ns = object->dict_ptr();
        if (assigned_namespaces_.empty() || assigned_namespaces_.back().lock() != ns) assigned_namespaces_.push_back(ns);
        ns->set(s.targets[1], value);
        return;
    }
    bind_targets(*scope, s.targets, value);
}

Value Renderer::make_macro(const Stmt& s, const ScopePtr& scope) {
    std::weak_ptr<Scope> defined_in = scope;
    const Stmt* stmt = &s;
    std::string name = s.kind == StmtKind::Macro ? s.name : "caller";
    return make_function(name, [stmt, defined_in](const CallArgs& args, Renderer& r) {
        return r.call_macro(*stmt, defined_in, args);
    });
}

Value Renderer::call_macro(const Stmt& s, const std::weak_ptr<Scope>& defined_in, const CallArgs& args) {
    DepthGuard guard(*this);
    ScopePtr parent = defined_in.lock();
    if (!parent) fail("macro '%s' called after its scope ended", s.name.c_str());
    auto scope = std::make_shared<Scope>();
    scope->parent = parent;
    for (size_t i = 0; i < s.params.size(); ++i) {
        const std::string& p = s.params[i];
        if (i < args.args.size()) scope->vars.set(p, args.args[i]);
        else if (const Value* v = args.kwarg(p)) scope->vars.set(p, *v);
        else if (s.defaults[i]) scope->vars.set(p, eval(*s.defaults[i], scope));
        else scope->vars.set(p, Value());
    }
    List varargs;
    for (size_t i = s.params.size(); i < args.args.size(); ++i) varargs.push_back(args.args[i]);
    scope->vars.set("varargs", Value::list(std::move(varargs)));
    DictPtr kwargs = make_dict();
    for (const auto& [k, v] : args.kwargs) {
        if (k == "caller") {
            scope->vars.set("caller", v);
            continue;
        }
        bool is_param = false;
        for (const std::string& p : s.params) is_param = is_param || p == k;
        if (!is_param) kwargs->set(k, v);
    }
    scope->vars.set("kwargs", Value::dict(kwargs));
    std::string out;
    int saved_line = line_;
    exec(s.body, scope, out);
    line_ = saved_line;
    return Value::string(std::move(out));
}

Value Renderer::call(const Value& callee, const CallArgs& args) {
    if (!callee.is_callable()) {
        if (callee.is_undefined()) fail("call of an undefined value");
        fail("'%s' object is not callable", kind_name(callee.kind()));
    }
    DepthGuard guard(*this);
    return callee.as_callable().fn(args, *this);
}

CallArgs Renderer::eval_args(const Expr& e, const ScopePtr& scope, size_t first) {
    CallArgs args;
    for (size_t i = first; i < e.items.size(); ++i) args.args.push_back(eval(*e.items[i], scope));
    for (const auto& [k, v] : e.kwargs) args.kwargs.emplace_back(k, eval(*v, scope));
    return args;
}

Value Renderer::eval_call(const Expr& e, const ScopePtr& scope, const Value* caller) {
    const Expr& callee_expr = *e.items[0];
    Value callee;
    if (callee_expr.kind == ExprKind::GetAttr) {
        callee = get_attr(eval(*callee_expr.items[0], scope), callee_expr.name, true);
        if (callee.is_undefined()) fail("no method '%s'", callee_expr.name.c_str());
    } else {
        callee = eval(callee_expr, scope);
        if (callee.is_undefined() && callee_expr.kind == ExprKind::Name)
            fail("'%s' is undefined", callee_expr.name.c_str());
    }
    CallArgs args = eval_args(e, scope, 1);
    if (caller) args.kwargs.emplace_back("caller", *caller);
    return call(callee, args);
}

// A filter node over `operand` when given (filter blocks, set blocks), else over its own operand.
Value Renderer::eval_filter(const Expr& e, const ScopePtr& scope, const Value* operand) {
    Value input;
    if (e.items[0]) input = e.items[0]->kind == ExprKind::Filter && operand ? eval_filter(*e.items[0], scope, operand)
                                                                           : eval(*e.items[0], scope);
    else if (operand) input = *operand;
    CallArgs args = eval_args(e, scope, 1);
    line_ = e.line;
    return apply_filter(*this, e.name, input, args);
}

Value Renderer::eval(const Expr& e, const ScopePtr& scope) {
    DepthGuard guard(*this);
    line_ = e.line;
    switch (e.kind) {
        case ExprKind::Literal: return e.literal;
        case ExprKind::Name: {
            const Value* v = scope->find(e.name);
            return v ? *v : Value();
        }
        case ExprKind::List:
        case ExprKind::Tuple: {
            List items;
            items.reserve(e.items.size());
            for (const ExprPtr& x : e.items) items.push_back(eval(*x, scope));
            charge(items.size());
            return Value::list(std::move(items));
        }
        case ExprKind::Dict: {
            DictPtr d = make_dict();
            for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
                Value key = eval(*e.items[i], scope);
                Value value = eval(*e.items[i + 1], scope);
                d->set(dict_key(key), std::move(value));
            }
            charge(d->size());
            return Value::dict(d);
        }
        case ExprKind::GetAttr: return get_attr(eval(*e.items[0], scope), e.name, false);
        case ExprKind::GetItem: {
            Value object = eval(*e.items[0], scope);
            return get_item(object, eval(*e.items[1], scope));
        }
        case ExprKind::Slice: {
            Value object = eval(*e.items[0], scope);
            Value bounds[3];
            for (int k = 0; k < 3; ++k)
                if (e.items[size_t(k) + 1]) bounds[k] = eval(*e.items[size_t(k) + 1], scope);
            line_ = e.line;
            return get_slice(*this, object, bounds[0], bounds[1], bounds[2]);
        }
        case ExprKind::Call: return eval_call(e, scope, nullptr);
        case ExprKind::Filter: return eval_filter(e, scope, nullptr);
        case ExprKind::Test: {
            Value operand = eval(*e.items[0], scope);
            CallArgs args = eval_args(e, scope, 1);
            line_ = e.line;
            bool result = apply_test(*this, e.name, operand, args);
            return Value::boolean(result != e.negated);
        }
        case ExprKind::Unary: {
            Value v = eval(*e.items[0], scope);
            line_ = e.line;
            if (e.op == "not") return Value::boolean(!truthy(v));
            if (v.is_bool()) v = Value::integer(v.as_int());
            if (!v.is_number()) fail("bad operand type for unary %s: '%s'", e.op.c_str(), kind_name(v.kind()));
            if (e.op == "+") return v;
            if (v.is_float()) return Value::number(-v.as_float());
            if (v.as_int() == INT64_MIN) fail("integer overflow");
            return Value::integer(-v.as_int());
        }
        case ExprKind::Binary: {
            Value left = eval(*e.items[0], scope);
            if (e.op == "and") return truthy(left) ? eval(*e.items[1], scope) : left;
            if (e.op == "or") return truthy(left) ? left : eval(*e.items[1], scope);
            Value right = eval(*e.items[1], scope);
            line_ = e.line;
            return binary_op(*this, e.op, left, right);
        }
        case ExprKind::Compare: {
            Value left = eval(*e.items[0], scope);
            for (size_t i = 0; i < e.compare_ops.size(); ++i) {
                Value right = eval(*e.items[i + 1], scope);
                line_ = e.line;
                if (!compare_op(e.compare_ops[i], left, right)) return Value::boolean(false);
                left = std::move(right);
            }
            return Value::boolean(true);
        }
        case ExprKind::Cond: {
            if (truthy(eval(*e.items[1], scope))) return eval(*e.items[0], scope);
            return e.items[2] ? eval(*e.items[2], scope) : Value();
        }
    }
    return Value();
}

}  // namespace moelite::jinja
