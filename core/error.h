// Errors and invariants.
//
// Two kinds of failure, kept apart on purpose:
//  - anything that comes from outside (files, flags, requests) is reported with
//    moelite::Error, an exception whose message names the file and the problem;
//    the CLI and the server catch it at their boundary;
//  - invariants of our own code are checked by MOELITE_ASSERT, always on, which
//    prints file:line and aborts. It is never used on input data.
#pragma once

#include <cstdarg>
#include <stdexcept>
#include <string>

namespace moelite {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// printf-style formatting into a std::string.
std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string vstrprintf(const char* fmt, va_list args);

// Throws Error with a printf-style message.
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void assert_failed(const char* file, int line, const char* expr, const char* message);

}  // namespace moelite

#define MOELITE_ASSERT(cond)                                                   \
    do {                                                                       \
        if (!(cond)) ::moelite::assert_failed(__FILE__, __LINE__, #cond, ""); \
    } while (0)

#define MOELITE_ASSERT_MSG(cond, msg)                                            \
    do {                                                                         \
        if (!(cond)) ::moelite::assert_failed(__FILE__, __LINE__, #cond, (msg)); \
    } while (0)
