#include "core/error.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace moelite {

std::string vstrprintf(const char* fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int n = std::vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    if (n <= 0) return std::string();
    std::vector<char> buf(size_t(n) + 1);
    std::vsnprintf(buf.data(), buf.size(), fmt, args);
    return std::string(buf.data(), size_t(n));
}

std::string strprintf(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    std::string s = vstrprintf(fmt, args);
    va_end(args);
    return s;
}

void fail(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    std::string s = vstrprintf(fmt, args);
    va_end(args);
    throw Error(s);
}

void assert_failed(const char* file, int line, const char* expr, const char* message) {
    std::fprintf(stderr, "moelite: internal error at %s:%d: assertion '%s' failed%s%s\n", file, line, expr,
                 message[0] ? ": " : "", message);
    std::fflush(stderr);
    std::abort();
}

}  // namespace moelite
