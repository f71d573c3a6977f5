// core/safetensors: valid files read back exactly, every header rule rejects
// a hostile file with an error naming the file and the problem, truncation
// never crashes, checkpoint directories (index, single file, loose shards)
// are checked against their shards, FP8 block scales dequantize exactly, and
// the four checkpoint fixtures open and read in full.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/error.h"
#include "core/fp16.h"
#include "core/safetensors.h"
#include "fuzz/safetensors_exercise.h"
#include "tests/test_util.h"

using namespace moelite;
using moelite::test::TempDir;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string le64(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(v >> (8 * i)));
    return s;
}

// A file made of a header length, `header` as given, and `data`.
std::string raw_file(const std::string& header, const std::string& data = "") {
    return le64(header.size()) + header + data;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
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
std::string build_file(const std::vector<Spec>& specs, const json& metadata = nullptr, size_t align = 8) {
    json header = json::object();
    std::string data;
    for (const auto& s : specs) {
        header[s.name] = {{"dtype", s.dtype}, {"shape", s.shape}, {"data_offsets", {data.size(), data.size() + s.bytes.size()}}};
        data += s.bytes;
    }
    if (!metadata.is_null()) header["__metadata__"] = metadata;
    std::string text = header.dump();
    while ((8 + text.size()) % align != 0) text += ' ';
    return raw_file(text, data);
}

void write_file(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    REQUIRE(out.good());
}

std::string read_whole(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// The message of the Error that `f` throws; FAILs when it throws none.
template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    FAIL_CHECK("no moelite::Error was thrown");
    return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

const float kNaN = std::nanf("");

}  // namespace

// ---------------------------------------------------------------------------
// dtypes and valid files

TEST_CASE("safetensors dtype table: names, sizes, float and GGUF types") {
    const std::vector<std::pair<const char*, size_t>> expected = {
        {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2},
        {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
    for (const auto& [name, size] : expected) {
        CAPTURE(name);
        auto t = safetensors_dtype_from_name(name);
        REQUIRE(t.has_value());
        CHECK(std::string(safetensors_dtype_name(*t)) == name);
        CHECK(safetensors_dtype_size(*t) == size);
    }
    CHECK_FALSE(safetensors_dtype_from_name("f32").has_value());  // the format's names are upper case
    CHECK_FALSE(safetensors_dtype_from_name("F4").has_value());
    CHECK_FALSE(safetensors_dtype_from_name("").has_value());
    CHECK(safetensors_dtype_is_float(SafetensorsDType::F8_E4M3));
    CHECK(safetensors_dtype_is_float(SafetensorsDType::BF16));
    CHECK_FALSE(safetensors_dtype_is_float(SafetensorsDType::I32));
    CHECK_FALSE(safetensors_dtype_is_float(SafetensorsDType::BOOL));
    CHECK(safetensors_dtype_to_dtype(SafetensorsDType::BF16) == DType::BF16);
    CHECK(safetensors_dtype_to_dtype(SafetensorsDType::I64) == DType::I64);
    CHECK_FALSE(safetensors_dtype_to_dtype(SafetensorsDType::F8_E4M3).has_value());
}

namespace {

// One tensor of each readable type, a scalar, an empty tensor and two
// non-float ones; the header is left unpadded so that data sits unaligned.
std::string mixed_file() {
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
    std::string file = build_file(specs, json{{"format", "pt"}, {"note", "\u00e9t\u00e9"}}, 1);
    uint64_t n;
    std::memcpy(&n, file.data(), 8);
    if (n % 2 == 0) {  // make the header length odd, so that the data sit unaligned
        file = raw_file(file.substr(8, size_t(n)) + " ", file.substr(8 + size_t(n)));
    }
    return file;
}

}  // namespace

TEST_CASE("safetensors: a valid file reads back exactly, from a file and from memory") {
    TempDir dir;
    const std::string bytes = mixed_file();
    const fs::path path = dir / "mixed.safetensors";
    write_file(path, bytes);
    SafetensorsFile mapped(path.string());
    SafetensorsFile in_memory("in-memory", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    REQUIRE(mapped.mapping() != nullptr);
    CHECK(in_memory.mapping() == nullptr);

    for (const SafetensorsFile* f : {&mapped, &in_memory}) {
        CAPTURE(f->path());
        REQUIRE(f->tensors().size() == 11);
        CHECK(f->metadata().at("format") == "pt");
        CHECK(f->metadata().size() == 2);
        // file order: by offset (the empty tensor and the scalar come last)
        std::vector<std::string> order;
        for (const auto& t : f->tensors()) order.push_back(t.name);
        CHECK(order == std::vector<std::string>{"f32", "f16", "bf16", "fp8", "e5m2", "f64", "i32", "i64", "mask",
                                                "scalar", "empty"});
        CHECK(f->data_offset() % 2 == 1);

        const auto& a = f->get("f32");
        CHECK(a.file == f);
        CHECK(a.dtype == SafetensorsDType::F32);
        CHECK(a.shape == std::vector<int64_t>{2, 3});
        CHECK(a.n_elements == 6);
        CHECK(a.begin == 0);
        CHECK(a.end == 24);
        CHECK(a.shape_string() == "[2, 3]");
        CHECK(a.data == f->data() + f->data_offset());
        CHECK(a.read_f32() == std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e30f});
        float two[2];
        a.read_f32(3, 2, two);  // a range from the middle
        CHECK(two[0] == 0.0f);
        CHECK(std::signbit(two[1]));

        CHECK(f->get("f16").read_f32() == std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)});
        auto bf = f->get("bf16").read_f32();
        CHECK(bf[0] == 1.0f);
        CHECK(bf[1] == -3.0f);
        CHECK(std::isinf(bf[2]));
        CHECK(f->get("fp8").read_f32() == std::vector<float>{1.0f, -1.0f, 448.0f, std::ldexp(1.0f, -9)});
        CHECK(f->get("e5m2").read_f32() == std::vector<float>{1.0f, -2.0f});
        CHECK(f->get("f64").read_f32() == std::vector<float>{0.1f, -std::numeric_limits<float>::infinity()});

        const auto& s = f->get("scalar");
        CHECK(s.shape.empty());
        CHECK(s.n_elements == 1);
        CHECK(s.shape_string() == "[]");
        CHECK(s.read_f32() == std::vector<float>{42.0f});
        const auto& e = f->get("empty");
        CHECK(e.n_elements == 0);
        CHECK(e.nbytes() == 0);
        CHECK(e.read_f32().empty());

        // raw bytes of the non-float types; converting them is refused by name
        const auto& i32 = f->get("i32");
        REQUIRE(i32.bytes().size() == 8);
        int32_t iv[2];
        std::memcpy(iv, i32.bytes().data(), 8);
        CHECK(iv[0] == 7);
        CHECK(iv[1] == -9);
        int64_t lv;
        std::memcpy(&lv, f->get("i64").bytes().data(), 8);
        CHECK(lv == (1ll << 40));
        CHECK(f->get("mask").bytes()[2] == 1);
        const std::string msg = error_of([&] { f->get("mask").read_f32(); });
        CHECK(contains(msg, f->path()));
        CHECK(contains(msg, "'mask'"));
        CHECK(contains(msg, "BOOL"));
        CHECK(contains(error_of([&] { f->get("i32").read_f32(); }), "I32"));

        CHECK(f->find("nope") == nullptr);
        const std::string missing = error_of([&] { f->get("nope"); });
        CHECK(contains(missing, f->path()));
        CHECK(contains(missing, "'nope'"));
    }
}

TEST_CASE("safetensors: holes between tensors, padding and a file with no tensors are valid") {
    // tensors out of order in the header, a 4-byte hole, trailing bytes
    const std::string header = R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                               R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}    )";
    const std::string data = bytes_of(std::vector<float>{1.0f, 99.0f, 2.0f, 99.0f});
    const std::string bytes = raw_file(header, data);
    SafetensorsFile f("holes", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    REQUIRE(f.tensors().size() == 2);
    CHECK(f.tensors()[0].name == "a");
    CHECK(f.get("b").read_f32() == std::vector<float>{2.0f});

    const std::string none = raw_file("{}");
    SafetensorsFile empty("none", reinterpret_cast<const uint8_t*>(none.data()), none.size());
    CHECK(empty.tensors().empty());
    CHECK(empty.metadata().empty());
}

// ---------------------------------------------------------------------------
// hostile files: one per rule

namespace {

struct Hostile {
    const char* rule;
    std::string bytes;
    std::vector<std::string> expected;  // phrases the message must hold, besides the file name
};

// Tensor "a": F32 [2] at [0, 8), with `dtype`, `shape` and `offsets` as JSON text.
std::string entry(const std::string& dtype = R"("F32")", const std::string& shape = "[2]",
                  const std::string& offsets = "[0,8]") {
    return R"("a":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

const std::string kEight(8, '\0');

std::vector<Hostile> hostile_files() {
    std::string deep = "{\"a\":" + std::string(200, '[') + std::string(200, ']') + "}";
    std::string rank65 = "[" + std::string(64 * 2, ' ');
    for (int i = 0; i < 65; ++i) rank65 += i ? ",1" : "1";
    rank65 += "]";
    return {
        {"empty file", "", {"too short", "0 bytes"}},
        {"seven bytes", std::string(7, '\0'), {"too short", "7 bytes"}},
        {"header length past the end", le64(100) + "{}", {"header length 100 runs past the end of the file"}},
        {"header length absurd", le64(uint64_t(1) << 62) + "{}", {"header length 4611686018427387904 is absurd"}},
        {"header length zero", le64(0) + "{}", {"header length is 0"}},
        {"header not JSON", raw_file("{\"a\":"), {"header is not valid JSON"}},
        {"header garbage", raw_file("hello, world"), {"header is not valid JSON"}},
        {"header invalid UTF-8", raw_file("{\"a\xff\":{}}"), {"header is not valid JSON"}},
        {"header trailing NUL", raw_file(std::string("{}\0", 3)), {"header is not valid JSON"}},
        {"header an array", raw_file("[1,2]"), {"header is JSON but not an object", "array"}},
        {"entry not an object", raw_file(R"({"a":[1]})"), {"tensor 'a': entry is not a JSON object"}},
        {"dtype missing", raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", kEight), {"tensor 'a': missing \"dtype\""}},
        {"dtype not a string", raw_file("{" + entry("5") + "}", kEight), {"tensor 'a': \"dtype\" is not a string"}},
        {"dtype unknown", raw_file("{" + entry(R"("Q4_K")") + "}", kEight), {"tensor 'a': unknown dtype 'Q4_K'"}},
        {"shape missing", raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", kEight), {"tensor 'a': missing \"shape\""}},
        {"shape not an array", raw_file("{" + entry(R"("F32")", "2") + "}", kEight), {"\"shape\" is not an array"}},
        {"shape of floats", raw_file("{" + entry(R"("F32")", "[2.0]") + "}", kEight), {"tensor 'a'", "not an integer"}},
        {"shape of strings", raw_file("{" + entry(R"("F32")", R"(["2"])") + "}", kEight), {"not an integer"}},
        {"negative dimension", raw_file("{" + entry(R"("F32")", "[-2]") + "}", kEight), {"tensor 'a': negative dimension -2"}},
        {"dimension past int64", raw_file("{" + entry(R"("F32")", "[18446744073709551615]") + "}", kEight),
         {"tensor 'a': dimension 18446744073709551615", "too large"}},
        {"dims overflow", raw_file("{" + entry(R"("F32")", "[4294967296,4294967296]") + "}", kEight),
         {"tensor 'a': shape [4294967296, 4294967296] has too many elements (the product overflows)"}},
        {"too many dims", raw_file("{" + entry(R"("F32")", rank65) + "}", kEight), {"65 dimensions"}},
        {"data_offsets missing", raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", kEight), {"tensor 'a': missing \"data_offsets\""}},
        {"data_offsets not a pair", raw_file("{" + entry(R"("F32")", "[2]", "[0]") + "}", kEight), {"not an array of two offsets"}},
        {"data_offsets floats", raw_file("{" + entry(R"("F32")", "[2]", "[0,8.0]") + "}", kEight), {"non-integer"}},
        {"data_offsets negative", raw_file("{" + entry(R"("F32")", "[2]", "[-8,0]") + "}", kEight), {"negative offset -8"}},
        {"end before begin", raw_file("{" + entry(R"("F32")", "[0]", "[8,0]") + "}", kEight),
         {"tensor 'a': data_offsets [8, 0] end before they begin"}},
        {"size mismatch", raw_file("{" + entry(R"("F32")", "[3]", "[0,8]") + "}", kEight),
         {"tensor 'a': data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 needs 12 bytes"}},
        {"byte size overflows", raw_file("{" + entry(R"("F32")", "[4611686018427387904]", "[0,8]") + "}", kEight),
         {"needs more than 2^64 bytes"}},
        {"data past the end", raw_file("{" + entry() + "}", std::string(4, '\0')),
         {"tensor 'a': data_offsets [0, 8] run past the end of the file (4 data bytes"}},
        {"overlapping tensors",
         raw_file("{" + entry() + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0')),
         {"tensors 'a' [0, 8) and 'b' [4, 12) overlap"}},
        {"overlap inside a larger tensor",
         raw_file(R"({"big":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                  R"("small":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},)"
                  R"("c":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}})",
                  std::string(20, '\0')),
         {"'big' [0, 16) and 'small' [12, 16) overlap"}},
        {"duplicate tensor name", raw_file("{" + entry() + "," + entry() + "}", kEight), {"header has tensor 'a' twice"}},
        {"duplicate key in an entry",
         raw_file(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", kEight),
         {"header has key 'dtype' twice"}},
        {"metadata not an object", raw_file(R"({"__metadata__":"pt"})"), {"__metadata__ is not a JSON object"}},
        {"metadata value not a string", raw_file(R"({"__metadata__":{"format":1}})"),
         {"__metadata__ value for 'format' is not a string"}},
        {"absurd nesting", raw_file(deep), {"header nests deeper than"}},
        {"control bytes in a name are escaped", raw_file(R"({"a\u001b[2J":{"dtype":"F99","shape":[],"data_offsets":[0,0]}})"),
         {"tensor 'a\\x1b[2J': unknown dtype 'F99'"}},
    };
}

}  // namespace

TEST_CASE("safetensors: every header rule rejects a hostile file, naming the file and the problem") {
    TempDir dir;
    int i = 0;
    for (const Hostile& h : hostile_files()) {
        CAPTURE(h.rule);
        const fs::path path = dir / ("hostile-" + std::to_string(i++) + ".safetensors");
        write_file(path, h.bytes);
        const std::string from_file = error_of([&] { SafetensorsFile f(path.string()); });
        CAPTURE(from_file);
        CHECK(from_file.rfind(path.string() + ": ", 0) == 0);
        for (const auto& phrase : h.expected) CHECK(contains(from_file, phrase));

        const std::string from_memory = error_of([&] {
            SafetensorsFile f("memory-copy", reinterpret_cast<const uint8_t*>(h.bytes.data()), h.bytes.size());
        });
        CHECK(from_memory.rfind("memory-copy: ", 0) == 0);
        for (const auto& phrase : h.expected) CHECK(contains(from_memory, phrase));
        CHECK_FALSE(fuzz::exercise_safetensors(reinterpret_cast<const uint8_t*>(h.bytes.data()), h.bytes.size()));
    }
}

TEST_CASE("safetensors: a valid file truncated at every byte is a clean error, never a crash") {
    const std::string bytes = mixed_file();
    for (size_t n = 0; n <= bytes.size(); ++n) {
        CAPTURE(n);
        // a fresh copy of exactly n bytes, so that a sanitizer sees any read past it
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(n));
        const bool valid = fuzz::exercise_safetensors(cut.data(), cut.size());
        // the last tensor with data ends at the end of the file, so any cut loses it
        CHECK(valid == (n == bytes.size()));
    }
    // and the same through the file mapping, at a few positions
    TempDir dir;
    for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(40), bytes.size() - 1}) {
        const fs::path path = dir / ("cut-" + std::to_string(n) + ".safetensors");
        write_file(path, bytes.substr(0, n));
        const std::string msg = error_of([&] { SafetensorsFile f(path.string()); });
        CHECK(contains(msg, path.string()));
    }
}

// ---------------------------------------------------------------------------
// checkpoint directories

namespace {

const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";

void write_shards(const TempDir& dir) {
    write_file(dir / kShard1, build_file({{"x.weight", "F32", {2}, bytes_of(std::vector<float>{1.0f, 2.0f})},
                                          {"y", "BF16", {2}, bytes_of(std::vector<uint16_t>{0x4040, 0xbf80})}}));
    write_file(dir / kShard2, build_file({{"z", "F32", {1}, bytes_of(std::vector<float>{5.0f})},
                                          {"a", "F16", {1, 1}, bytes_of(std::vector<uint16_t>{0x4400})}}));
}

json good_weight_map() { return {{"x.weight", kShard1}, {"y", kShard1}, {"z", kShard2}, {"a", kShard2}}; }

void write_index(const TempDir& dir, const json& weight_map) {
    write_file(dir / "model.safetensors.index.json",
               json{{"metadata", {{"total_size", 18}}}, {"weight_map", weight_map}}.dump(2));
}

std::string checkpoint_error(const TempDir& dir) {
    return error_of([&] { SafetensorsCheckpoint c(dir.path().string()); });
}

}  // namespace

TEST_CASE("safetensors checkpoint: an index over two shards") {
    TempDir dir;
    write_shards(dir);
    write_index(dir, good_weight_map());
    write_file(dir / "stray.safetensors", "not a safetensors file");  // not listed: never opened

    SafetensorsCheckpoint c(dir.path().string());
    CHECK(c.has_index());
    REQUIRE(c.shard_count() == 2);
    CHECK(fs::path(c.shard(0).path()).filename() == kShard1);
    CHECK(c.size() == 4);
    // shards in name order, each in file order
    CHECK(c.names() == std::vector<std::string>{"x.weight", "y", "z", "a"});
    CHECK(c.get("y").read_f32() == std::vector<float>{3.0f, -1.0f});
    CHECK(c.get("a").read_f32() == std::vector<float>{4.0f});
    CHECK(c.get("a").shape == std::vector<int64_t>{1, 1});
    CHECK(fs::path(c.get("a").file->path()).filename() == kShard2);
    CHECK(c.find("b") == nullptr);
    const std::string msg = error_of([&] { c.get("b"); });
    CHECK(contains(msg, dir.path().string()));
    CHECK(contains(msg, "no tensor named 'b'"));
}

TEST_CASE("safetensors checkpoint: an index that disagrees with its shards is an error naming the file") {
    TempDir dir;
    write_shards(dir);
    const std::string index = (dir / "model.safetensors.index.json").string();

    SUBCASE("a listed shard is missing") {
        json m = good_weight_map();
        m["q"] = "model-00003-of-00003.safetensors";
        write_index(dir, m);
        const std::string msg = checkpoint_error(dir);
        CHECK(contains(msg, index + ": "));
        CHECK(contains(msg, (dir / "model-00003-of-00003.safetensors").string()));
        CHECK(contains(msg, "does not exist"));
        CHECK(contains(msg, "'q'"));
    }
    SUBCASE("a listed tensor is not in its shard") {
        json m = good_weight_map();
        m["ghost"] = kShard1;
        write_index(dir, m);
        const std::string msg = checkpoint_error(dir);
        CHECK(contains(msg, index + ": "));
        CHECK(contains(msg, (dir / kShard1).string()));
        CHECK(contains(msg, "does not hold: 'ghost'"));
    }
    SUBCASE("a shard tensor is not listed") {
        json m = good_weight_map();
        m.erase("z");
        write_index(dir, m);
        const std::string msg = checkpoint_error(dir);
        CHECK(contains(msg, index + ": "));
        CHECK(contains(msg, (dir / kShard2).string()));
        CHECK(contains(msg, "does not list: 'z'"));
    }
    SUBCASE("a shard tensor is listed in another shard") {
        json m = good_weight_map();
        m["y"] = kShard2;
        write_index(dir, m);
        const std::string msg = checkpoint_error(dir);
        CHECK(contains(msg, index + ": "));
        CHECK(contains(msg, "holds tensor 'y', but weight_map puts it in '" + std::string(kShard2) + "'"));
    }
    SUBCASE("a shard outside the directory") {
        json m = good_weight_map();
        m["x.weight"] = "../" + std::string(kShard1);
        write_index(dir, m);
        CHECK(contains(checkpoint_error(dir), "not a plain file name"));
    }
    SUBCASE("a broken shard") {
        write_file(dir / kShard2, le64(1000) + "{}");
        write_index(dir, good_weight_map());
        const std::string msg = checkpoint_error(dir);
        CHECK(msg.rfind((dir / kShard2).string() + ": header length 1000 runs past", 0) == 0);
    }
    SUBCASE("the index is malformed") {
        write_file(index, R"({"weight_map": )");
        CHECK(contains(checkpoint_error(dir), index + ": index is not valid JSON"));
        write_file(index, R"({"metadata": {}})");
        CHECK(contains(checkpoint_error(dir), index + ": index has no \"weight_map\""));
        write_file(index, R"({"weight_map": ["a"]})");
        CHECK(contains(checkpoint_error(dir), "\"weight_map\" is not a JSON object"));
        write_file(index, R"({"weight_map": {}})");
        CHECK(contains(checkpoint_error(dir), "\"weight_map\" is empty"));
        write_file(index, R"({"weight_map": {"z": 3}})");
        CHECK(contains(checkpoint_error(dir), "weight_map entry for 'z' is not a string"));
        write_file(index, R"({"weight_map": {"z": "model-00002-of-00002.safetensors", "z": "x"}})");
        CHECK(contains(checkpoint_error(dir), index + ": index has key 'z' twice"));
    }
}

TEST_CASE("safetensors checkpoint: without an index") {
    TempDir dir;
    SUBCASE("model.safetensors alone, other files ignored") {
        write_file(dir / "model.safetensors", build_file({{"w", "F32", {1}, bytes_of(std::vector<float>{7.0f})}}));
        write_file(dir / "other.safetensors", "junk");
        SafetensorsCheckpoint c(dir.path().string());
        CHECK_FALSE(c.has_index());
        CHECK(c.shard_count() == 1);
        CHECK(c.get("w").read_f32() == std::vector<float>{7.0f});
    }
    SUBCASE("every *.safetensors, in name order") {
        write_file(dir / "b.safetensors", build_file({{"w2", "F32", {1}, bytes_of(std::vector<float>{2.0f})}}));
        write_file(dir / "a.safetensors", build_file({{"w1", "F32", {1}, bytes_of(std::vector<float>{1.0f})}}));
        write_file(dir / "notes.txt", "ignored");
        SafetensorsCheckpoint c(dir.path().string());
        CHECK(c.shard_count() == 2);
        CHECK(c.names() == std::vector<std::string>{"w1", "w2"});
    }
    SUBCASE("a tensor in two files") {
        write_file(dir / "a.safetensors", build_file({{"w", "F32", {1}, bytes_of(std::vector<float>{1.0f})}}));
        write_file(dir / "b.safetensors", build_file({{"w", "F32", {1}, bytes_of(std::vector<float>{2.0f})}}));
        const std::string msg = checkpoint_error(dir);
        CHECK(contains(msg, "tensor 'w' is in both"));
        CHECK(contains(msg, (dir / "a.safetensors").string()));
        CHECK(contains(msg, (dir / "b.safetensors").string()));
    }
    SUBCASE("one file by its path") {
        write_file(dir / "x.safetensors", build_file({{"w", "F32", {1}, bytes_of(std::vector<float>{3.0f})}}));
        SafetensorsCheckpoint c((dir / "x.safetensors").string());
        CHECK(c.size() == 1);
    }
    SUBCASE("nothing to open") {
        write_file(dir / "config.json", "{}");
        const std::string msg = checkpoint_error(dir);
        CHECK(contains(msg, dir.path().string() + ": no model.safetensors.index.json"));
        const std::string missing = (dir / "nowhere").string();
        CHECK(contains(error_of([&] { SafetensorsCheckpoint c(missing); }), missing + ": no such file or directory"));
    }
}

// ---------------------------------------------------------------------------
// FP8 block scales

namespace {

// `rows` x `cols` random FP8 E4M3 bytes (never the NaN codes) and a float
// scale per block of `br` x `bc`.
std::string fp8_weight_and_scales(int64_t rows, int64_t cols, int64_t br, int64_t bc, const char* scale_dtype = "F32",
                                  std::vector<int64_t> scale_shape = {}) {
    std::mt19937 rng(1234);
    std::string w(size_t(rows * cols), '\0');
    for (auto& b : w) {
        uint8_t v;
        do v = uint8_t(rng()); while ((v & 0x7f) == 0x7f);
        b = char(v);
    }
    if (scale_shape.empty()) scale_shape = {(rows + br - 1) / br, (cols + bc - 1) / bc};
    std::vector<float> s(size_t(scale_shape[0] * scale_shape[1]));
    for (size_t i = 0; i < s.size(); ++i) s[i] = 0.001f * float(i + 1) + 0.0003f;
    std::string sb = bytes_of(s);
    if (std::string(scale_dtype) == "I32") sb = std::string(s.size() * 4, '\0');
    return build_file({{"w", "F8_E4M3", {rows, cols}, w}, {"w_scale_inv", scale_dtype, scale_shape, sb}});
}

}  // namespace

TEST_CASE("fp8 block scales: dequantized rows equal fp8 value times the block's scale, partial edge blocks too") {
    struct Case {
        int64_t rows, cols, br, bc;
    };
    for (Case k : {Case{130, 260, 128, 128}, Case{256, 128, 128, 128}, Case{70, 33, 64, 16}, Case{5, 7, 3, 2}}) {
        CAPTURE(k.rows);
        CAPTURE(k.cols);
        const std::string bytes = fp8_weight_and_scales(k.rows, k.cols, k.br, k.bc);
        SafetensorsFile f("fp8", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        const auto& w = f.get("w");
        const auto& s = f.get("w_scale_inv");
        const std::vector<float> scales = s.read_f32();
        const int64_t scale_cols = s.shape[1];
        std::vector<float> all(size_t(k.rows * k.cols), kNaN);
        fp8_dequantize_rows(w, s, 0, k.rows, all.data(), k.br, k.bc);
        int bad = 0;
        for (int64_t r = 0; r < k.rows; ++r)
            for (int64_t c = 0; c < k.cols; ++c) {
                const float want = fp8_e4m3_to_fp32(w.data[r * k.cols + c]) * scales[size_t(r / k.br * scale_cols + c / k.bc)];
                bad += all[size_t(r * k.cols + c)] != want;
            }
        CHECK(bad == 0);
        // a row range that starts inside a block and crosses into the next
        const int64_t r0 = k.rows / 2 - 1, r1 = k.rows;
        std::vector<float> part(size_t((r1 - r0) * k.cols), kNaN);
        fp8_dequantize_rows(w, s, r0, r1, part.data(), k.br, k.bc);
        CHECK(std::equal(part.begin(), part.end(), all.begin() + r0 * k.cols));
        fp8_dequantize_rows(w, s, 3, 3, nullptr, k.br, k.bc);  // empty range: nothing written
    }
}

TEST_CASE("fp8 block scales: a scale tensor that does not fit its weight is an error naming both") {
    SUBCASE("wrong scale shape") {
        const std::string bytes = fp8_weight_and_scales(130, 260, 128, 128, "F32", {2, 2});
        SafetensorsFile f("fp8-file", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        std::vector<float> out(260);
        const std::string msg = error_of([&] { fp8_dequantize_rows(f.get("w"), f.get("w_scale_inv"), 0, 1, out.data()); });
        CHECK(contains(msg, "fp8-file: scale tensor 'w_scale_inv' has shape [2, 2], but weight 'w' [130, 260]"));
        CHECK(contains(msg, "in 128x128 blocks needs [2, 3]"));
        // the same file is right for another block size
        CHECK_NOTHROW(fp8_check_block_scales(f.get("w"), f.get("w_scale_inv"), 128, 130));
    }
    SUBCASE("other problems") {
        const std::string bytes = fp8_weight_and_scales(4, 4, 2, 2, "I32");
        SafetensorsFile f("fp8-file", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        CHECK(contains(error_of([&] { fp8_check_block_scales(f.get("w"), f.get("w_scale_inv"), 2, 2); }),
                       "fp8-file: scale tensor 'w_scale_inv' has dtype I32, not a float type"));
        CHECK(contains(error_of([&] { fp8_check_block_scales(f.get("w"), f.get("w_scale_inv"), 0, 2); }),
                       "fp8-file: tensor 'w': FP8 block size 0x2 is not positive"));
        CHECK(contains(error_of([&] { fp8_check_block_scales(f.get("w_scale_inv"), f.get("w"), 2, 2); }),
                       "tensor 'w_scale_inv' has dtype I32; block scales apply to F8_E4M3 weights"));
        const std::string one_d = build_file({{"v", "F8_E4M3", {4}, std::string(4, '\x38')},
                                              {"v_scale_inv", "F32", {1}, bytes_of(std::vector<float>{1.0f})}});
        SafetensorsFile g("fp8-1d", reinterpret_cast<const uint8_t*>(one_d.data()), one_d.size());
        CHECK(contains(error_of([&] { fp8_check_block_scales(g.get("v"), g.get("v_scale_inv"), 128, 128); }),
                       "fp8-1d: tensor 'v' has shape [4]; FP8 block scales need a 2-D weight"));
    }
}

// ---------------------------------------------------------------------------
// the checkpoint fixtures

namespace {

json read_json(const fs::path& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    return json::parse(in);
}

// Opens fixture `name` and checks it against its index and config.json;
// returns the dtype counts.
std::map<std::string, int> check_fixture(const std::string& name, size_t expected_tensors) {
    const fs::path dir = test::fixtures_dir() / name;
    CAPTURE(name);
    const json config = read_json(dir / "config.json");
    SafetensorsCheckpoint c(dir.string());
    CHECK(c.size() == expected_tensors);

    if (fs::exists(dir / "model.safetensors.index.json")) {
        CHECK(c.has_index());
        const json weight_map = read_json(dir / "model.safetensors.index.json").at("weight_map");
        CHECK(weight_map.size() == c.size());
        std::set<std::string> shards;
        for (const auto& [tensor, shard] : weight_map.items()) {
            const SafetensorsTensor* t = c.find(tensor);
            REQUIRE_MESSAGE(t, tensor);
            CHECK(fs::path(t->file->path()).filename() == shard.get<std::string>());
            shards.insert(shard.get<std::string>());
        }
        CHECK(c.shard_count() == shards.size());
    } else {
        CHECK_FALSE(c.has_index());
        CHECK(c.shard_count() == 1);
    }

    // every tensor reads, and every value is finite
    std::map<std::string, int> dtypes;
    std::set<std::string> names;
    for (const SafetensorsTensor* t : c.tensors()) {
        CAPTURE(t->name);
        dtypes[safetensors_dtype_name(t->dtype)]++;
        names.insert(t->name);
        REQUIRE(safetensors_dtype_is_float(t->dtype));
        const std::vector<float> v = t->read_f32();
        CHECK(v.size() == size_t(t->n_elements));
        CHECK(std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }));
    }
    CHECK(names.size() == c.size());
    CHECK(c.names().size() == c.size());

    const int64_t hidden = config.at("hidden_size").get<int64_t>();
    const int64_t vocab = config.at("vocab_size").get<int64_t>();
    CHECK(c.get("model.embed_tokens.weight").shape == std::vector<int64_t>{vocab, hidden});
    CHECK(c.get("lm_head.weight").shape == std::vector<int64_t>{vocab, hidden});
    CHECK(c.get("model.norm.weight").shape == std::vector<int64_t>{hidden});
    CHECK(c.get("model.layers.0.input_layernorm.weight").shape == std::vector<int64_t>{hidden});
    std::set<int> layers;
    for (const auto& n : names)
        if (n.rfind("model.layers.", 0) == 0) layers.insert(std::stoi(n.substr(13)));
    const int expected_layers = config.at("num_hidden_layers").get<int>() + config.value("num_nextn_predict_layers", 0);
    CHECK(layers.size() == size_t(expected_layers));
    CHECK(*layers.rbegin() == expected_layers - 1);
    return dtypes;
}

}  // namespace

TEST_CASE("safetensors fixtures: every checkpoint opens, agrees with its index and config, and reads in full") {
    MOELITE_REQUIRE_FIXTURES();
    // tensor counts and dtypes from reading the headers with Python's json
    CHECK(check_fixture("qwen2-tiny", 39) == std::map<std::string, int>{{"BF16", 39}});
    CHECK(check_fixture("llama3-tiny", 30) == std::map<std::string, int>{{"BF16", 30}});
    CHECK(check_fixture("deepseek-v2-lite-tiny", 227) == std::map<std::string, int>{{"BF16", 227}});
    CHECK(check_fixture("deepseek-v3-tiny", 383) ==
          std::map<std::string, int>{{"BF16", 28}, {"F32", 179}, {"F8_E4M3", 176}});
}

TEST_CASE("safetensors fixtures: deepseek-v3-tiny FP8 weights dequantize with their block scales") {
    MOELITE_REQUIRE_FIXTURES();
    const fs::path dir = test::fixtures_dir() / "deepseek-v3-tiny";
    const json block = read_json(dir / "config.json").at("quantization_config").at("weight_block_size");
    const int64_t br = block.at(0).get<int64_t>(), bc = block.at(1).get<int64_t>();
    REQUIRE(br == 128);
    REQUIRE(bc == 128);
    SafetensorsCheckpoint c(dir.string());

    int fp8 = 0, cross_shard = 0;
    for (const SafetensorsTensor* t : c.tensors()) {
        if (t->dtype != SafetensorsDType::F8_E4M3) continue;
        CAPTURE(t->name);
        ++fp8;
        const SafetensorsTensor& scale = c.get(t->name + "_scale_inv");
        cross_shard += scale.file != t->file;
        std::vector<float> w(size_t(t->n_elements));
        fp8_dequantize_rows(*t, scale, 0, t->shape[0], w.data(), br, bc);
        double sum2 = 0, max_abs = 0;
        for (float x : w) {
            sum2 += double(x) * x;
            max_abs = std::max(max_abs, double(std::fabs(x)));
        }
        const double rms = std::sqrt(sum2 / double(w.size()));
        // initialised N(0, 1/fan_in) with fan_in 64..512: rms 0.04..0.13
        CHECK(std::isfinite(sum2));
        CHECK(rms > 0.01);
        CHECK(rms < 0.5);
        CHECK(max_abs < 2.0);
    }
    CHECK(fp8 == 176);
    CHECK(cross_shard == 1);  // experts.15.down_proj of layer 1: weight in shard 1, scale in shard 2

    // Elements worked out by hand from the raw bytes (E4M3: bias 7, 3 mantissa bits):
    // name, row, col, fp8 byte, decoded, scale_inv[r/128][c/128], product in f32.
    struct Element {
        const char* name;
        int64_t row, col;
        uint8_t byte;
        float value, scale, product;
    };
    const Element elements[] = {
        // 0x5c = 0 1011 100: 2^(11-7) * 1.5 = 24; block (1, 2)
        {"model.layers.0.mlp.down_proj.weight", 200, 300, 0x5c, 24.0f, 0.0003795043448917568f, 0.009108103811740875f},
        // 0x6e = 0 1101 110: 2^6 * 1.75 = 112; partial block (0, 1) of an 80-row weight
        {"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", 79, 255, 0x6e, 112.0f, 0.0005996060208417475f,
         0.0671558752655983f},
        // 0xe1 = 1 1100 001: -(2^5 * 1.125) = -36; block (2, 0)
        {"model.layers.1.self_attn.q_b_proj.weight", 383, 95, 0xe1, -36.0f, 0.0009620165219530463f,
         -0.034632593393325806f},
        // 0x71 = 0 1110 001: 2^7 * 1.125 = 144; the scale lives in another shard
        {"model.layers.1.mlp.experts.15.down_proj.weight", 255, 127, 0x71, 144.0f, 0.0008034371421672404f,
         0.11569494754076004f},
    };
    for (const Element& e : elements) {
        CAPTURE(e.name);
        const SafetensorsTensor& w = c.get(e.name);
        const SafetensorsTensor& s = c.get(std::string(e.name) + "_scale_inv");
        const int64_t cols = w.shape[1];
        CHECK(w.data[e.row * cols + e.col] == e.byte);
        float v;
        w.read_f32(e.row * cols + e.col, 1, &v);
        CHECK(v == e.value);
        CHECK(s.read_f32()[size_t(e.row / 128 * s.shape[1] + e.col / 128)] == e.scale);
        std::vector<float> row(static_cast<size_t>(cols));
        fp8_dequantize_rows(w, s, e.row, e.row + 1, row.data());
        CHECK(row[size_t(e.col)] == e.product);
    }
}

TEST_CASE("safetensors fixtures: a real shard truncated anywhere in and after its header is a clean error") {
    MOELITE_REQUIRE_FIXTURES();
    const std::string bytes = read_whole(test::fixtures_dir() / "deepseek-v3-tiny" / "model-00001-of-00003.safetensors");
    uint64_t header;
    std::memcpy(&header, bytes.data(), 8);
    std::vector<size_t> cuts;
    for (size_t n = 0; n < 8 + header + 64; ++n) cuts.push_back(n);
    for (size_t n = 8 + header + 64; n < bytes.size(); n += 40961) cuts.push_back(n);
    for (size_t n : cuts) {
        CAPTURE(n);
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(n));
        CHECK_FALSE(fuzz::exercise_safetensors(cut.data(), cut.size()));
    }
    CHECK(fuzz::exercise_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// ---------------------------------------------------------------------------
// fuzzing: seeds and saved crashes

namespace {

// Small valid files for fuzz/corpus/safetensors; writes them when
// MOELITE_WRITE_SAFETENSORS_SEEDS names a directory.
std::vector<std::pair<std::string, std::string>> fuzz_seeds() {
    std::vector<std::pair<std::string, std::string>> seeds;
    seeds.emplace_back("mixed.safetensors", mixed_file());
    seeds.emplace_back("fp8-blocks.safetensors", fp8_weight_and_scales(5, 7, 3, 2));
    seeds.emplace_back("fp8-128.safetensors", fp8_weight_and_scales(3, 130, 128, 128));
    seeds.emplace_back("empty.safetensors", raw_file("{}"));
    seeds.emplace_back("metadata-only.safetensors", raw_file(R"({"__metadata__":{"format":"pt"}}      )"));
    seeds.emplace_back("holes.safetensors",
                       raw_file(R"({"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},)"
                                R"("a":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})",
                                std::string(16, '\x01')));
    return seeds;
}

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_regular_file()) out.push_back(it->path());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("safetensors fuzz seeds are valid files and match the committed corpus") {
    const fs::path corpus = test::source_dir() / "fuzz" / "corpus" / "safetensors";
    if (const char* out = std::getenv("MOELITE_WRITE_SAFETENSORS_SEEDS"); out && *out) {
        for (const auto& [name, bytes] : fuzz_seeds()) write_file(fs::path(out) / name, bytes);
    }
    for (const auto& [name, bytes] : fuzz_seeds()) {
        CAPTURE(name);
        CHECK(fuzz::exercise_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
        CHECK_MESSAGE(read_whole(corpus / name) == bytes, "fuzz/corpus/safetensors/" << name
                      << " is missing or stale: rerun with MOELITE_WRITE_SAFETENSORS_SEEDS=fuzz/corpus/safetensors");
    }
}

TEST_CASE("safetensors: inputs that once crashed the fuzzer are clean errors or valid files") {
    const fs::path crashes = test::source_dir() / "tests" / "data" / "safetensors-crashes";
    int replayed = 0;
    for (const fs::path& p : files_in(crashes)) {
        if (p.extension() == ".md") continue;
        CAPTURE(p.filename().string());
        const std::string bytes = read_whole(p);
        fuzz::exercise_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        ++replayed;
    }
    MESSAGE("replayed " << replayed << " saved fuzzer input(s)");
}
