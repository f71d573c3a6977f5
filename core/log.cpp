#include "core/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "core/error.h"

namespace moelite {
namespace {

// The logger is process configuration set once by the application, not model
// or session state; it is guarded so that threads may log.
std::mutex g_log_mutex;
LogCallback g_log_callback;
std::atomic<int> g_log_level{int(LogLevel::Warn)};

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::Debug: return "debug";
        case LogLevel::Info: return "info";
        case LogLevel::Warn: return "warning";
        case LogLevel::Error: return "error";
        case LogLevel::None: break;
    }
    return "";
}

}  // namespace

void log_set_callback(LogCallback callback) {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    g_log_callback = std::move(callback);
}

void log_set_level(LogLevel level) { g_log_level.store(int(level)); }

LogLevel log_level() { return LogLevel(g_log_level.load()); }

void log_message(LogLevel level, const char* fmt, ...) {
    if (int(level) < g_log_level.load()) return;
    va_list args;
    va_start(args, fmt);
    std::string text = vstrprintf(fmt, args);
    va_end(args);
    std::lock_guard<std::mutex> lock(g_log_mutex);
    if (g_log_callback) {
        g_log_callback(level, text);
    } else {
        std::fprintf(stderr, "moelite: %s: %s\n", level_name(level), text.c_str());
    }
}

}  // namespace moelite
