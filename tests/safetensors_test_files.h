// Builders of safetensors bytes for the tests (tests/test_safetensors*.cpp):
// raw files with a header given as text, valid files from a list of tensors,
// and a few fixed files that the tests and the fuzz seeds share.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace moelite::test {

inline std::string le64(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(v >> (8 * i)));
    return s;
}

// A file made of a header length, `header` as given, and `data`.
inline std::string raw_file(const std::string& header, const std::string& data = "") {
    return le64(header.size()) + header + data;
}

template <typename T>
inline std::string bytes_of(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

struct Spec {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    std::string bytes;
};

// A valid file holding `specs` back to back in the given order. The header is
// padded with spaces to a multiple of `align` bytes (1: no padding).
inline std::string build_file(const std::vector<Spec>& specs, const nlohmann::json& metadata = nullptr,
                              size_t align = 8) {
    nlohmann::json header = nlohmann::json::object();
    std::string data;
    for (const auto& s : specs) {
        header[s.name] = {
            {"dtype", s.dtype}, {"shape", s.shape}, {"data_offsets", {data.size(), data.size() + s.bytes.size()}}};
        data += s.bytes;
    }
    if (!metadata.is_null()) header["__metadata__"] = metadata;
    std::string text = header.dump();
    while ((8 + text.size()) % align != 0) text += ' ';
    return raw_file(text, data);
}

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    REQUIRE(out.good());
}

inline std::string read_whole(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// The message of the Error that `f` throws; FAILs when it throws none.
template <typename F>
inline std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    FAIL_CHECK("no moelite::Error was thrown");
    return "";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

inline const float kNaN = std::nanf("");

// One tensor of each readable type, a scalar, an empty tensor and two
// non-float ones; the header is left unpadded so that data sits unaligned.
inline std::string mixed_file() {
    std::vector<Spec> specs;
    specs.push_back({"f32", "F32", {2, 3}, bytes_of(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e30f})});
    specs.push_back({"f16", "F16", {4}, bytes_of(std::vector<uint16_t>{0x3c00, 0xc000, 0x7bff, 0x0001})});
    specs.push_back({"bf16", "BF16", {3}, bytes_of(std::vector<uint16_t>{0x3f80, 0xc040, 0x7f80})});
    specs.push_back({"fp8", "F8_E4M3", {2, 2}, std::string("\x38\xb8\x7e\x01", 4)});
    specs.push_back({"e5m2", "F8_E5M2", {2}, std::string("\x3c\xc0", 2)});
    specs.push_back({"f64", "F64", {2}, bytes_of(std::vector<double>{0.1, -1e300})});
    specs.push_back({"i32", "I32", {2}, bytes_of(std::vector<int32_t>{7, -9})});
    specs.push_back({"i64", "I64", {1}, bytes_of(std::vector<int64_t>{1ll << 40})});
    specs.push_back({"mask", "BOOL", {3}, std::string("\x01\x00\x01", 3)});
    specs.push_back({"scalar", "F32", {}, bytes_of(std::vector<float>{42.0f})});
    specs.push_back({"empty", "F32", {0, 5}, ""});
    std::string file = build_file(specs, nlohmann::json{{"format", "pt"}, {"note", "\u00e9t\u00e9"}}, 1);
    uint64_t n;
    std::memcpy(&n, file.data(), 8);
    if (n % 2 == 0) {  // make the header length odd, so that the data sit unaligned
        file = raw_file(file.substr(8, size_t(n)) + " ", file.substr(8 + size_t(n)));
    }
    return file;
}

// `rows` x `cols` random FP8 E4M3 bytes (never the NaN codes) and a float
// scale per block of `br` x `bc`.
inline std::string fp8_weight_and_scales(int64_t rows, int64_t cols, int64_t br, int64_t bc,
                                         const char* scale_dtype = "F32", std::vector<int64_t> scale_shape = {}) {
    std::mt19937 rng(1234);
    std::string w(size_t(rows * cols), '\0');
    for (auto& b : w) {
        uint8_t v;
        do v = uint8_t(rng());
        while ((v & 0x7f) == 0x7f);
        b = char(v);
    }
    if (scale_shape.empty()) scale_shape = {(rows + br - 1) / br, (cols + bc - 1) / bc};
    std::vector<float> s(size_t(scale_shape[0] * scale_shape[1]));
    for (size_t i = 0; i < s.size(); ++i) s[i] = 0.001f * float(i + 1) + 0.0003f;
    std::string sb = bytes_of(s);
    if (std::string(scale_dtype) == "I32") sb = std::string(s.size() * 4, '\0');
    return build_file({{"w", "F8_E4M3", {rows, cols}, w}, {"w_scale_inv", scale_dtype, scale_shape, sb}});
}

}  // namespace moelite::test
