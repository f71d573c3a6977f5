// `moelite info FILE.gguf`: what a GGUF file holds. The version, the
// architecture, the metadata (one line per key; long strings and arrays
// shortened), the tensor table and totals; --json prints the same as one JSON
// object (scalar strings in full, arrays cut to their first elements).
// A corrupted file is reported by the reader's Error (main prints it, exit 1).
#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/commands.h"
#include "core/error.h"
#include "core/gguf.h"

namespace moelite::app {
namespace {

constexpr size_t kTextArrayItems = 6;    // array elements shown per metadata line
constexpr size_t kTextStringChars = 60;  // string bytes shown per value
constexpr size_t kJsonArrayItems = 16;   // array elements in --json

struct TypeTotal {
    size_t tensors = 0;
    uint64_t bytes = 0;
};

struct Totals {
    uint64_t bytes = 0;
    std::map<std::string, TypeTotal> by_type;
};

Totals compute_totals(const GgufFile& f) {
    Totals totals;
    for (const GgufTensorInfo& t : f.tensors()) {
        totals.bytes += t.nbytes;
        TypeTotal& tt = totals.by_type[dtype_name(t.type)];
        tt.tensors += 1;
        tt.bytes += t.nbytes;
    }
    return totals;
}

std::string human_bytes(uint64_t n) {
    static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = double(n);
    int u = 0;
    while (x >= 1024.0 && u < 4) {
        x /= 1024.0;
        ++u;
    }
    return u == 0 ? strprintf("%llu B", (unsigned long long)n) : strprintf("%.2f %s", x, kUnits[u]);
}

// general.architecture if it is a string; the info command reports what is
// there rather than failing on a file a model loader would refuse.
std::string architecture(const GgufFile& f) {
    const GgufValue* v = f.find("general.architecture");
    const std::string* s = v ? v->get_if<std::string>() : nullptr;
    return s ? *s : std::string();
}

// Keys and names as they are, unless they hold control characters (a
// hostile file could move the cursor or clear the screen): then escaped.
std::string display_name(const std::string& s) {
    return gguf_printable(s, 200);
}

std::string type_label(const GgufValue& v) {
    return v.is_array() ? "array" : gguf_type_name(v.type());
}

void print_text(const GgufFile& f, bool show_metadata, bool show_tensors) {
    const std::string arch = architecture(f);
    std::printf("file:          %s (%s, %zu bytes)\n", display_name(f.path()).c_str(),
                human_bytes(f.file_size()).c_str(), f.file_size());
    std::printf("GGUF version:  %u\n", f.version());
    std::printf("architecture:  %s\n", arch.empty() ? "(none)" : display_name(arch).c_str());
    std::printf("alignment:     %zu\n", f.alignment());
    std::printf("data offset:   %zu\n", f.data_offset());

    if (show_metadata) {
        size_t width = 0;
        for (const GgufKV& kv : f.metadata()) width = std::max(width, kv.key.size());
        width = std::min<size_t>(width, 48);
        std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
        for (const GgufKV& kv : f.metadata()) {
            std::printf("  %-*s  %-6s  %s\n", int(width), display_name(kv.key).c_str(), type_label(kv.value).c_str(),
                        kv.value.to_string(kTextArrayItems, kTextStringChars).c_str());
        }
    }

    if (show_tensors && !f.tensors().empty()) {
        size_t width = 4;
        for (const GgufTensorInfo& t : f.tensors()) width = std::max(width, t.name.size());
        std::printf("\ntensors (%zu):\n", f.tensors().size());
        std::printf("  %-*s  %-8s  %-24s  %14s\n", int(width), "name", "type", "shape", "bytes");
        for (const GgufTensorInfo& t : f.tensors()) {
            std::printf("  %-*s  %-8s  %-24s  %14zu\n", int(width), display_name(t.name).c_str(), dtype_name(t.type),
                        t.shape_string().c_str(), t.nbytes);
        }
    }

    const Totals totals = compute_totals(f);
    std::printf("\ntotals: %zu tensors, %s (%llu bytes)\n", f.tensors().size(), human_bytes(totals.bytes).c_str(),
                (unsigned long long)totals.bytes);
    for (const auto& [name, tt] : totals.by_type) {
        std::printf("  %-8s %6zu tensors  %12s  (%llu bytes)\n", name.c_str(), tt.tensors,
                    human_bytes(tt.bytes).c_str(), (unsigned long long)tt.bytes);
    }
}

nlohmann::ordered_json value_json(const GgufValue& v) {
    nlohmann::ordered_json out;
    out["type"] = type_label(v);
    if (!v.is_array()) {
        v.visit([&](const auto& x) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, GgufArray>) out["value"] = x;
        });
        return out;
    }
    out["element_type"] = gguf_type_name(v.element_type());
    out["count"] = v.size();
    nlohmann::ordered_json values = nlohmann::ordered_json::array();
    const size_t shown = std::min(v.size(), kJsonArrayItems);
    for (size_t i = 0; i < shown; ++i) values.push_back(value_json(v.element(i))["value"]);
    out["values"] = std::move(values);
    out["truncated"] = shown < v.size();
    return out;
}

void print_json(const GgufFile& f, bool show_metadata, bool show_tensors) {
    nlohmann::ordered_json j;
    j["file"] = f.path();
    j["file_size"] = f.file_size();
    j["version"] = f.version();
    const std::string arch = architecture(f);
    j["architecture"] = arch.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(arch);
    j["alignment"] = f.alignment();
    j["data_offset"] = f.data_offset();
    if (show_metadata) {
        nlohmann::ordered_json md = nlohmann::ordered_json::object();
        for (const GgufKV& kv : f.metadata()) md[kv.key] = value_json(kv.value);
        j["metadata"] = std::move(md);
    }
    if (show_tensors) {
        nlohmann::ordered_json ts = nlohmann::ordered_json::array();
        for (const GgufTensorInfo& t : f.tensors()) {
            nlohmann::ordered_json shape = nlohmann::ordered_json::array();
            for (int d = 0; d < t.n_dims; ++d) shape.push_back(t.ne[d]);
            ts.push_back({{"name", t.name},
                          {"type", dtype_name(t.type)},
                          {"shape", std::move(shape)},
                          {"offset", t.offset},
                          {"bytes", t.nbytes}});
        }
        j["tensors"] = std::move(ts);
    }
    const Totals totals = compute_totals(f);
    nlohmann::ordered_json by_type = nlohmann::ordered_json::object();
    for (const auto& [name, tt] : totals.by_type) by_type[name] = {{"tensors", tt.tensors}, {"bytes", tt.bytes}};
    j["totals"] = {{"tensors", f.tensors().size()}, {"bytes", totals.bytes}, {"by_type", std::move(by_type)}};
    // Metadata strings are not checked for UTF-8; replace bad bytes rather than throw.
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
}

int run_info(int argc, char** argv) {
    cxxopts::Options options("moelite info", "Print what a GGUF file holds: version, metadata, tensors, totals.");
    options.positional_help("FILE.gguf");
    options.add_options()("json", "print one JSON object")("no-tensors", "leave out the tensor table")(
        "no-metadata", "leave out the metadata")("h,help", "print this help")("file", "the GGUF file",
                                                                              cxxopts::value<std::string>());
    options.parse_positional({"file"});
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", options.help().c_str());
        return 0;
    }
    if (!args.count("file")) {
        std::fprintf(stderr, "moelite info: no file given (see --help)\n");
        return 2;
    }
    const auto file = GgufFile::open(args["file"].as<std::string>());
    const bool show_metadata = !args.count("no-metadata");
    const bool show_tensors = !args.count("no-tensors");
    if (args.count("json")) {
        print_json(*file, show_metadata, show_tensors);
    } else {
        print_text(*file, show_metadata, show_tensors);
    }
    return 0;
}

const CommandRegistration kRegistration("info", "print a GGUF file's metadata and tensors", run_info);

}  // namespace
}  // namespace moelite::app
