// What the Jinja interpreter knows how to do with values: operators, member
// and item access, string/dict/list methods and global functions
// (models/jinja_ops.cpp), filters and tests (models/jinja_filters.cpp).
// Errors are thrown as moelite::Error with a message in Python's words; the
// renderer adds the line number.
#pragma once

#include <string>
#include <vector>

#include "models/jinja_eval.h"
#include "models/jinja_value.h"

namespace moelite::jinja {

// Binary operators other than `and` / `or`: + - * / // % ** ~
Value binary_op(Renderer& r, const std::string& op, const Value& a, const Value& b);
// == != < <= > >= in, `not in`
bool compare_op(const std::string& op, const Value& a, const Value& b);
// Python's `item in container` (false for an undefined container).
bool contains(const Value& container, const Value& item);

// `object.name`. With for_call, a method beats a dict key of the same name.
Value get_attr(const Value& object, const std::string& name, bool for_call);
// `object[key]`: out of range or missing gives undefined.
Value get_item(const Value& object, const Value& key);
// `object[start:stop:step]` on a list or a string (code points).
Value get_slice(Renderer& r, const Value& object, const Value& start, const Value& stop, const Value& step);

// The items a for loop (or a filter) walks: a list's items, a dict's keys, a
// string's characters; none for undefined. Throws for anything else.
List iterate(const Value& v);

Value apply_filter(Renderer& r, const std::string& name, const Value& operand, const CallArgs& args);
bool apply_test(Renderer& r, const std::string& name, const Value& operand, const CallArgs& args);
bool is_filter_name(const std::string& name);
bool is_test_name(const std::string& name);

// range, namespace, dict, joiner, raise_exception, strftime_now.
void install_globals(Scope& globals);

// Python's str.strip family over Unicode whitespace (or the given characters).
std::string py_strip(const std::string& s, const Value* chars, bool left, bool right);
// Python str.split(sep=None / sep, maxsplit).
List py_split(const std::string& s, const Value* sep, int64_t maxsplit);
std::string ascii_lower(std::string s);
std::string ascii_upper(std::string s);

}  // namespace moelite::jinja
