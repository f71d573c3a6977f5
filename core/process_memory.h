// What this process holds in memory, as the kernel counts it
// (/proc/self/status): the resident set now and at its peak, split into
// file-backed pages (the memory-mapped weights) and anonymous ones (KV cache,
// activations, heap). Linux only; elsewhere every figure is unknown.
#pragma once

#include <cstdint>
#include <string_view>

namespace moelite {

// Bytes; -1 where the kernel did not say (older kernels lack the Rss* split).
struct ProcessMemory {
    int64_t vm_hwm = -1;    // peak resident set (VmHWM)
    int64_t vm_rss = -1;    // resident set now (VmRSS)
    int64_t rss_anon = -1;  // of which anonymous (RssAnon)
    int64_t rss_file = -1;  // of which file-backed: mapped files, the binary (RssFile)
};

// Parses the text of a /proc/<pid>/status file ("VmHWM:    1234 kB" lines).
ProcessMemory parse_proc_status(std::string_view text);
// This process, now.
ProcessMemory process_memory();

}  // namespace moelite
