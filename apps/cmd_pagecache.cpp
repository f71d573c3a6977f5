// `moelite pagecache FILE... [--evict]`: how much of each file is in the
// page cache, after dropping it first with --evict. Memory benchmarks use it
// to start from a cold cache without root (bench/moe-rss.sh): eviction is
// posix_fadvise(DONTNEED), which drops the clean pages no process maps.
#include <cstdio>
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "core/error.h"
#include "core/mmap.h"

namespace moelite::app {
namespace {

int run_pagecache(int argc, char** argv) {
    cxxopts::Options opts("moelite pagecache", "Show (and with --evict, first drop) the page-cache pages of files.");
    opts.add_options()("evict", "drop the files' clean pages from the page cache first")(
        "files", "files", cxxopts::value<std::vector<std::string>>())("h,help", "show this help");
    opts.parse_positional({"files"});
    opts.positional_help("FILE...");
    auto args = opts.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", opts.help().c_str());
        return 0;
    }
    if (!args.count("files")) fail("no files given");
    for (const std::string& path : args["files"].as<std::vector<std::string>>()) {
        if (args.count("evict")) page_cache_evict(path);
        MappedFile map(path);
        const size_t cached = map.resident_bytes(0, map.size());
        std::printf("%s: %zu of %zu bytes in the page cache (%.1f%%)\n", path.c_str(), cached, map.size(),
                    map.size() ? 100.0 * double(cached) / double(map.size()) : 0.0);
    }
    return 0;
}

CommandRegistration reg("pagecache", "show or drop files' page-cache pages (for memory benchmarks)", run_pagecache);

}  // namespace
}  // namespace moelite::app
