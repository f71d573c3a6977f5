// One levelled logger for the whole library. Library code never prints; it
// logs, and the application decides what reaches the user by installing a
// callback (the default writes warnings and errors to stderr).
#pragma once

#include <functional>
#include <string>

namespace moelite {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, None = 4 };

using LogCallback = std::function<void(LogLevel, const std::string&)>;

// Replaces the callback; an empty one restores the default.
void log_set_callback(LogCallback callback);
// Messages below this level are dropped before formatting.
void log_set_level(LogLevel level);
LogLevel log_level();

void log_message(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace moelite

#define MOELITE_LOG_DEBUG(...) ::moelite::log_message(::moelite::LogLevel::Debug, __VA_ARGS__)
#define MOELITE_LOG_INFO(...) ::moelite::log_message(::moelite::LogLevel::Info, __VA_ARGS__)
#define MOELITE_LOG_WARN(...) ::moelite::log_message(::moelite::LogLevel::Warn, __VA_ARGS__)
#define MOELITE_LOG_ERROR(...) ::moelite::log_message(::moelite::LogLevel::Error, __VA_ARGS__)
