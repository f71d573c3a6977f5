#include "convert/generation_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "models/gguf_meta.h"

namespace moelite {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

enum class Kind { Int, Float, String };

struct SamplingField {
    const char* hf;    // generation_config.json key
    const char* gguf;  // sampling_key::*
    Kind kind;
    double lo, hi;  // accepted range (numbers)
};

// llama.cpp's mapping (gguf-py Metadata.load), in its order, with ranges
// that the samplers accept.
constexpr SamplingField kFields[] = {
    {"sequence", sampling_key::kSequence, Kind::String, 0, 0},
    {"top_k", sampling_key::kTopK, Kind::Int, 0, 2147483647.0},
    {"top_p", sampling_key::kTopP, Kind::Float, 0, 1},
    {"min_p", sampling_key::kMinP, Kind::Float, 0, 1},
    {"xtc_probability", sampling_key::kXtcProbability, Kind::Float, 0, 1},
    {"xtc_threshold", sampling_key::kXtcThreshold, Kind::Float, 0, 1},
    {"temperature", sampling_key::kTemp, Kind::Float, 0, 1e6},
    {"penalty_last_n", sampling_key::kPenaltyLastN, Kind::Int, -1, 2147483647.0},
    {"penalty_repeat", sampling_key::kPenaltyRepeat, Kind::Float, 0, 1e6},
    {"mirostat", sampling_key::kMirostat, Kind::Int, 0, 2},
    {"mirostat_tau", sampling_key::kMirostatTau, Kind::Float, 0, 1e6},
    {"mirostat_eta", sampling_key::kMirostatEta, Kind::Float, 0, 1e6},
};

}  // namespace

std::vector<GgufKV> sampling_metadata_from_json(const std::string& text, const std::string& name,
                                                std::vector<std::string>* notes) {
    std::vector<GgufKV> out;
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        notes->push_back(strprintf("%s: not a JSON object; no sampling settings taken from it", name.c_str()));
        return out;
    }
    for (const SamplingField& f : kFields) {
        const json* v = j.contains(f.hf) ? &j.at(f.hf) : nullptr;
        // Transformers' name for the same penalty, when llama.cpp's is absent.
        if (!v && std::string_view(f.hf) == "penalty_repeat" && j.contains("repetition_penalty"))
            v = &j.at("repetition_penalty");
        if (!v || v->is_null()) continue;
        auto skip = [&](const char* why) {
            notes->push_back(strprintf("%s: \"%s\" %s; left out", name.c_str(), f.hf, why));
        };
        if (f.kind == Kind::String) {
            if (!v->is_string()) {
                skip("is not a string");
                continue;
            }
            out.push_back({f.gguf, GgufValue(v->get<std::string>())});
            continue;
        }
        if (!v->is_number()) {
            skip("is not a number");
            continue;
        }
        const double x = v->get<double>();
        if (!std::isfinite(x) || x < f.lo || x > f.hi) {
            skip("is out of range");
            continue;
        }
        if (f.kind == Kind::Int) {
            if (x != std::floor(x)) {
                skip("is not an integer");
                continue;
            }
            out.push_back({f.gguf, GgufValue(int32_t(x))});
        } else {
            out.push_back({f.gguf, GgufValue(float(x))});
        }
    }
    return out;
}

std::vector<GgufKV> sampling_metadata_of_dir(const std::string& dir, std::vector<std::string>* notes) {
    const fs::path path = fs::path(dir) / "generation_config.json";
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return {};
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
        notes->push_back(strprintf("%s: cannot be read; no sampling settings taken from it", path.c_str()));
        return {};
    }
    return sampling_metadata_from_json(text, path.string(), notes);
}

}  // namespace moelite
