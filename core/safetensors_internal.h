// Helpers shared by core/safetensors.cpp and core/safetensors_checkpoint.cpp;
// not part of the public interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace moelite::safetensors_detail {

// `s` with control bytes escaped (\xNN) and cut after max_bytes, for quoting
// names from a hostile file in an error message.
std::string printable(std::string_view s, size_t max_bytes = 160);

// "[2, 3]"
std::string shape_string(const std::vector<int64_t>& shape);

// Parses [begin, end) as JSON and throws Error naming `path` and `what`
// ("header", "index") when it is not valid JSON, nests absurdly deep, or has
// a key twice in one object (nlohmann would silently keep the last).
// `top_keys_are_tensors` only words the duplicate-key message.
nlohmann::json parse_json_strict(const std::string& path, const char* what, const char* begin, const char* end,
                                 bool top_keys_are_tensors);

}  // namespace moelite::safetensors_detail
