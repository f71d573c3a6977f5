// safetensors files: the dtype table, header validation, and conversion of
// tensor data to f32. The checkpoint directory and FP8 block scales are in
// safetensors_checkpoint.cpp. See core/safetensors.h for the format and the
// conventions.
#include "core/safetensors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.h"
#include "core/fp16.h"
#include "core/mmap.h"
#include "core/safetensors_internal.h"

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so must the host be");

namespace moelite {

using json = nlohmann::json;

// ---------------------------------------------------------------------------
// dtypes

namespace {

struct StDTypeInfo {
    SafetensorsDType type;
    const char* name;
    uint8_t size;
    bool is_float;  // read_f32 converts it
    std::optional<DType> gguf;
};

const StDTypeInfo kStTypes[] = {
    {SafetensorsDType::BOOL, "BOOL", 1, false, std::nullopt},
    {SafetensorsDType::U8, "U8", 1, false, std::nullopt},
    {SafetensorsDType::I8, "I8", 1, false, DType::I8},
    {SafetensorsDType::F8_E4M3, "F8_E4M3", 1, true, std::nullopt},
    {SafetensorsDType::F8_E5M2, "F8_E5M2", 1, true, std::nullopt},
    {SafetensorsDType::F8_E8M0, "F8_E8M0", 1, false, std::nullopt},
    {SafetensorsDType::I16, "I16", 2, false, DType::I16},
    {SafetensorsDType::U16, "U16", 2, false, std::nullopt},
    {SafetensorsDType::F16, "F16", 2, true, DType::F16},
    {SafetensorsDType::BF16, "BF16", 2, true, DType::BF16},
    {SafetensorsDType::I32, "I32", 4, false, DType::I32},
    {SafetensorsDType::U32, "U32", 4, false, std::nullopt},
    {SafetensorsDType::F32, "F32", 4, true, DType::F32},
    {SafetensorsDType::I64, "I64", 8, false, DType::I64},
    {SafetensorsDType::U64, "U64", 8, false, std::nullopt},
    {SafetensorsDType::F64, "F64", 8, true, DType::F64},
};

const StDTypeInfo& st_info(SafetensorsDType type) {
    const size_t i = size_t(type);
    MOELITE_ASSERT(i < std::size(kStTypes) && kStTypes[i].type == type);
    return kStTypes[i];
}

// The 256 values of FP8 E4M3, looked up rather than decoded per element.
const float* fp8_e4m3_table() {
    static const auto table = [] {
        std::array<float, 256> t{};
        for (int i = 0; i < 256; ++i) t[size_t(i)] = fp8_e4m3_to_fp32(uint8_t(i));
        return t;
    }();
    return table.data();
}

// E5M2 is the upper byte of an IEEE binary16.
float fp8_e5m2_to_fp32(uint8_t v) {
    return fp16_to_fp32(uint16_t(uint16_t(v) << 8));
}

}  // namespace

std::optional<SafetensorsDType> safetensors_dtype_from_name(std::string_view name) {
    for (const auto& t : kStTypes)
        if (name == t.name) return t.type;
    return std::nullopt;
}

const char* safetensors_dtype_name(SafetensorsDType type) {
    return st_info(type).name;
}
size_t safetensors_dtype_size(SafetensorsDType type) {
    return st_info(type).size;
}
bool safetensors_dtype_is_float(SafetensorsDType type) {
    return st_info(type).is_float;
}
std::optional<DType> safetensors_dtype_to_dtype(SafetensorsDType type) {
    return st_info(type).gguf;
}

// ---------------------------------------------------------------------------
// helpers shared with safetensors_checkpoint.cpp

namespace safetensors_detail {

std::string printable(std::string_view s, size_t max_bytes) {
    std::string out;
    const size_t n = std::min(s.size(), max_bytes);
    out.reserve(n + 8);
    for (size_t i = 0; i < n; ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) {
            out += strprintf("\\x%02x", c);
        } else {
            out += char(c);
        }
    }
    if (s.size() > max_bytes) out += strprintf("... (%zu bytes)", s.size());
    return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += strprintf(i ? ", %" PRId64 : "%" PRId64, shape[i]);
    return s + "]";
}

namespace {

// A first pass over the text that builds nothing and refuses what nlohmann
// would accept silently or expensively:
//  - a key twice in one object: nlohmann keeps the last without a word, and a
//    file that names a tensor twice is ambiguous;
//  - nesting deeper than any valid header needs;
//  - more values than a real header holds (about ten per tensor), so that a
//    hostile header of long arrays cannot make the parsed tree take gigabytes.
// (nlohmann's parser callbacks could see the same events, but its callback
// parser rescans the enclosing object at the end of every nested one, which
// is quadratic in the number of tensors.)
class StrictJsonChecker : public nlohmann::json_sax<json> {
public:
    StrictJsonChecker(const std::string& path, const char* what, bool top_keys_are_tensors)
        : path_(path), what_(what), top_keys_are_tensors_(top_keys_are_tensors) {}

    bool null() override { return value(); }
    bool boolean(bool) override { return value(); }
    bool number_integer(number_integer_t) override { return value(); }
    bool number_unsigned(number_unsigned_t) override { return value(); }
    bool number_float(number_float_t, const string_t&) override { return value(); }
    bool string(string_t&) override { return value(); }
    bool binary(binary_t&) override { return value(); }
    bool start_object(std::size_t) override {
        open();
        keys_.emplace_back();
        return true;
    }
    bool key(string_t& key) override {
        MOELITE_ASSERT(!keys_.empty());
        if (!keys_.back().insert(key).second) {
            const bool tensor = top_keys_are_tensors_ && keys_.size() == 1;
            fail("%s: %s has %s '%s' twice", path_.c_str(), what_, tensor ? "tensor" : "key", printable(key).c_str());
        }
        return true;
    }
    bool end_object() override {
        keys_.pop_back();
        --nesting_;
        return true;
    }
    bool start_array(std::size_t) override {
        open();
        return true;
    }
    bool end_array() override {
        --nesting_;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
        fail("%s: %s is not valid JSON: %s", path_.c_str(), what_, printable(e.what(), 300).c_str());
    }

private:
    static constexpr int kMaxNesting = 32;
    static constexpr size_t kMaxValues = size_t(1) << 23;

    bool value() {
        if (++values_ > kMaxValues) fail("%s: %s holds more than %zu values", path_.c_str(), what_, kMaxValues);
        return true;
    }
    void open() {
        if (++nesting_ > kMaxNesting) fail("%s: %s nests deeper than %d levels", path_.c_str(), what_, kMaxNesting);
        value();
    }

    const std::string& path_;
    const char* what_;
    bool top_keys_are_tensors_;
    std::vector<std::unordered_set<std::string>> keys_;  // per open object
    int nesting_ = 0;
    size_t values_ = 0;
};

}  // namespace

json parse_json_strict(const std::string& path, const char* what, const char* begin, const char* end,
                       bool top_keys_are_tensors) {
    // nlohmann stops at a NUL byte as if the text ended there; JSON has no
    // place for a raw one, so it is refused here rather than skipped over.
    if (const void* nul = std::memchr(begin, 0, size_t(end - begin))) {
        fail("%s: %s is not valid JSON: a NUL byte at offset %td", path.c_str(), what,
             static_cast<const char*>(nul) - begin);
    }
    StrictJsonChecker checker(path, what, top_keys_are_tensors);
    json::sax_parse(begin, end, &checker);  // throws Error on any problem
    try {
        return json::parse(begin, end);
    } catch (const json::exception& e) {  // not expected after the first pass
        fail("%s: %s is not valid JSON: %s", path.c_str(), what, printable(e.what(), 300).c_str());
    }
}

}  // namespace safetensors_detail

using safetensors_detail::printable;
using safetensors_detail::shape_string;

// ---------------------------------------------------------------------------
// tensors

std::string SafetensorsTensor::shape_string() const {
    return safetensors_detail::shape_string(shape);
}

void SafetensorsTensor::read_f32(int64_t first, int64_t count, float* out) const {
    MOELITE_ASSERT(first >= 0 && count >= 0 && first <= n_elements && count <= n_elements - first);
    if (!safetensors_dtype_is_float(dtype)) {
        fail(
            "%s: tensor '%s' has dtype %s, which does not convert to f32 (float types: F32, F16, BF16, "
            "F8_E4M3, F8_E5M2, F64)",
            file ? file->path().c_str() : "?", printable(name).c_str(), safetensors_dtype_name(dtype));
    }
    if (count == 0) return;
    const size_t n = size_t(count);
    const uint8_t* p = data + size_t(first) * safetensors_dtype_size(dtype);
    switch (dtype) {
        case SafetensorsDType::F32:
            std::memcpy(out, p, n * 4);
            break;
        case SafetensorsDType::F16:
            for (size_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, p + 2 * i, 2);
                out[i] = fp16_to_fp32(h);
            }
            break;
        case SafetensorsDType::BF16:
            for (size_t i = 0; i < n; ++i) {
                uint16_t h;
                std::memcpy(&h, p + 2 * i, 2);
                out[i] = bf16_to_fp32(h);
            }
            break;
        case SafetensorsDType::F8_E4M3: {
            const float* table = fp8_e4m3_table();
            for (size_t i = 0; i < n; ++i) out[i] = table[p[i]];
            break;
        }
        case SafetensorsDType::F8_E5M2:
            for (size_t i = 0; i < n; ++i) out[i] = fp8_e5m2_to_fp32(p[i]);
            break;
        case SafetensorsDType::F64:
            for (size_t i = 0; i < n; ++i) {
                double d;
                std::memcpy(&d, p + 8 * i, 8);
                // Converting a double beyond float's range is undefined in C++;
                // from 2^128 - 2^103 on, round-to-nearest gives infinity.
                constexpr double kRoundsToInf = 0x1.ffffffp+127;
                if (std::fabs(d) >= kRoundsToInf) {
                    out[i] = d > 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
                } else {
                    out[i] = float(d);  // in range, or NaN
                }
            }
            break;
        default:
            MOELITE_ASSERT_MSG(false, "a float dtype without a converter");
    }
}

std::vector<float> SafetensorsTensor::read_f32() const {
    std::vector<float> out(static_cast<size_t>(n_elements));
    read_f32(0, n_elements, out.data());
    return out;
}

// ---------------------------------------------------------------------------
// files

namespace {

// The reference implementation's limit; real headers are far smaller (the
// largest shards of DeepSeek-V3 have a few hundred kilobytes).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr size_t kMaxRank = 64;

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(std::make_unique<MappedFile>(path)), path_(path) {
    data_ = map_->data();
    size_ = map_->size();
    parse();
}

SafetensorsFile::SafetensorsFile(std::string name, const uint8_t* data, size_t size)
    : path_(std::move(name)), data_(data), size_(size) {
    parse();
}

SafetensorsFile::~SafetensorsFile() = default;

void SafetensorsFile::parse() {
    const char* file = path_.c_str();
    if (size_ < 8) fail("%s: file is %zu bytes, too short for a safetensors header (8-byte length first)", file, size_);
    uint64_t header_bytes;
    std::memcpy(&header_bytes, data_, 8);
    if (header_bytes > kMaxHeaderBytes) {
        fail("%s: header length %" PRIu64 " is absurd (the limit is %" PRIu64 " bytes)", file, header_bytes,
             kMaxHeaderBytes);
    }
    if (header_bytes > size_ - 8) {
        fail("%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)", file, header_bytes, size_);
    }
    if (header_bytes == 0) fail("%s: header length is 0; the header must be a JSON object", file);
    data_offset_ = 8 + size_t(header_bytes);
    const uint64_t data_bytes = size_ - data_offset_;

    const char* text = reinterpret_cast<const char*>(data_ + 8);
    json header = safetensors_detail::parse_json_strict(path_, "header", text, text + header_bytes, true);
    if (!header.is_object()) fail("%s: header is JSON but not an object (it is %s)", file, header.type_name());

    tensors_.reserve(header.size());
    for (auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            if (!value.is_object()) fail("%s: __metadata__ is not a JSON object (it is %s)", file, value.type_name());
            for (auto& [mkey, mvalue] : value.items()) {
                if (!mvalue.is_string()) {
                    fail("%s: __metadata__ value for '%s' is not a string (it is %s)", file, printable(mkey).c_str(),
                         mvalue.type_name());
                }
                metadata_.emplace(mkey, mvalue.get<std::string>());
            }
            continue;
        }
        const std::string shown = printable(key);
        const char* tname = shown.c_str();
        if (!value.is_object())
            fail("%s: tensor '%s': entry is not a JSON object (it is %s)", file, tname, value.type_name());

        SafetensorsTensor t;
        t.file = this;
        t.name = key;

        auto dtype_it = value.find("dtype");
        if (dtype_it == value.end()) fail("%s: tensor '%s': missing \"dtype\"", file, tname);
        if (!dtype_it->is_string()) fail("%s: tensor '%s': \"dtype\" is not a string", file, tname);
        const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
        auto dtype = safetensors_dtype_from_name(dtype_name);
        if (!dtype) fail("%s: tensor '%s': unknown dtype '%s'", file, tname, printable(dtype_name).c_str());
        t.dtype = *dtype;

        auto shape_it = value.find("shape");
        if (shape_it == value.end()) fail("%s: tensor '%s': missing \"shape\"", file, tname);
        if (!shape_it->is_array()) fail("%s: tensor '%s': \"shape\" is not an array", file, tname);
        if (shape_it->size() > kMaxRank)
            fail("%s: tensor '%s': shape has %zu dimensions (at most %zu)", file, tname, shape_it->size(), kMaxRank);
        for (const auto& d : *shape_it) {
            if (!d.is_number_integer())
                fail("%s: tensor '%s': shape has a dimension that is not an integer", file, tname);
            if (d.is_number_unsigned()) {
                const uint64_t u = d.get<uint64_t>();
                if (u > uint64_t(std::numeric_limits<int64_t>::max()))
                    fail("%s: tensor '%s': dimension %" PRIu64 " in the shape is too large", file, tname, u);
                t.shape.push_back(int64_t(u));
            } else {
                const int64_t v = d.get<int64_t>();
                if (v < 0) fail("%s: tensor '%s': negative dimension %" PRId64 " in the shape", file, tname, v);
                t.shape.push_back(v);
            }
        }
        int64_t n = 1;
        for (int64_t d : t.shape) {
            if (__builtin_mul_overflow(n, d, &n)) {
                fail("%s: tensor '%s': shape %s has too many elements (the product overflows)", file, tname,
                     shape_string(t.shape).c_str());
            }
        }
        t.n_elements = n;

        auto offsets_it = value.find("data_offsets");
        if (offsets_it == value.end()) fail("%s: tensor '%s': missing \"data_offsets\"", file, tname);
        const json& offsets = *offsets_it;
        if (!offsets.is_array() || offsets.size() != 2)
            fail("%s: tensor '%s': \"data_offsets\" is not an array of two offsets", file, tname);
        for (const auto& o : offsets) {
            if (!o.is_number_integer()) fail("%s: tensor '%s': \"data_offsets\" holds a non-integer", file, tname);
            if (!o.is_number_unsigned())
                fail("%s: tensor '%s': \"data_offsets\" holds a negative offset %" PRId64, file, tname,
                     o.get<int64_t>());
        }
        t.begin = offsets[0].get<uint64_t>();
        t.end = offsets[1].get<uint64_t>();
        if (t.end < t.begin) {
            fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", file, tname, t.begin,
                 t.end);
        }
        uint64_t need;
        const bool too_big = __builtin_mul_overflow(uint64_t(n), uint64_t(safetensors_dtype_size(t.dtype)), &need);
        if (too_big || t.end - t.begin != need) {
            fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                 " bytes, but shape %s of %s needs %s bytes",
                 file, tname, t.begin, t.end, t.end - t.begin, shape_string(t.shape).c_str(),
                 safetensors_dtype_name(t.dtype), too_big ? "more than 2^64" : strprintf("%" PRIu64, need).c_str());
        }
        if (t.end > data_bytes) {
            fail("%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the file (%" PRIu64
                 " data bytes after the header)",
                 file, tname, t.begin, t.end, data_bytes);
        }
        t.data = data_ + data_offset_ + t.begin;
        tensors_.push_back(std::move(t));
    }

    // File order; then no two tensors that hold bytes may share any.
    std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
        if (a.begin != b.begin) return a.begin < b.begin;
        if (a.end != b.end) return a.end < b.end;
        return a.name < b.name;
    });
    const SafetensorsTensor* reach = nullptr;  // the non-empty tensor that ends last so far
    for (const auto& t : tensors_) {
        if (t.begin == t.end) continue;
        if (reach && t.begin < reach->end) {
            fail("%s: tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64 ") overlap", file,
                 printable(reach->name).c_str(), reach->begin, reach->end, printable(t.name).c_str(), t.begin, t.end);
        }
        if (!reach || t.end > reach->end) reach = &t;
    }

    by_name_.resize(tensors_.size());
    for (size_t i = 0; i < tensors_.size(); ++i) by_name_[i] = uint32_t(i);
    std::sort(by_name_.begin(), by_name_.end(),
              [this](uint32_t a, uint32_t b) { return tensors_[a].name < tensors_[b].name; });
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
    auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                               [this](uint32_t i, std::string_view n) { return tensors_[i].name < n; });
    if (it == by_name_.end() || tensors_[*it].name != name) return nullptr;
    return &tensors_[*it];
}

const SafetensorsTensor& SafetensorsFile::get(std::string_view name) const {
    const SafetensorsTensor* t = find(name);
    if (!t) fail("%s: no tensor named '%s'", path_.c_str(), printable(name).c_str());
    return *t;
}

}  // namespace moelite
