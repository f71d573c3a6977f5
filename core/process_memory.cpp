#include "core/process_memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace moelite {
namespace {

// "   1234 kB" -> 1234 * 1024; -1 when the value is not a number in kB.
int64_t parse_kib(std::string_view v) {
    size_t i = 0;
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
    if (i == v.size() || v[i] < '0' || v[i] > '9') return -1;
    int64_t n = 0;
    for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) {
        if (n > (int64_t(1) << 50)) return -1;
        n = n * 10 + (v[i] - '0');
    }
    while (i < v.size() && v[i] == ' ') ++i;
    if (v.substr(i, 2) != "kB") return -1;
    return n * 1024;
}

}  // namespace

ProcessMemory parse_proc_status(std::string_view text) {
    ProcessMemory m;
    while (!text.empty()) {
        const size_t eol = text.find('\n');
        const std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
        if (key == "VmHWM")
            m.vm_hwm = parse_kib(value);
        else if (key == "VmRSS")
            m.vm_rss = parse_kib(value);
        else if (key == "RssAnon")
            m.rss_anon = parse_kib(value);
        else if (key == "RssFile")
            m.rss_file = parse_kib(value);
    }
    return m;
}

ProcessMemory process_memory() {
    std::ifstream in("/proc/self/status");
    if (!in) return {};
    std::ostringstream text;
    text << in.rdbuf();
    return parse_proc_status(text.str());
}

}  // namespace moelite
