// core/safetensors, single files: the dtype table, valid files read back
// exactly, every header rule rejects a hostile file with an error naming the
// file and the problem, big headers stay fast, truncation never crashes, and
// the fuzz seeds and saved fuzzer crashes replay cleanly.
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
#include "tests/safetensors_test_files.h"
#include "tests/test_util.h"

using namespace moelite;
using namespace moelite::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------
// dtypes and valid files

TEST_CASE("safetensors dtype table: names, sizes, float and GGUF types") {
    const std::vector<std::pair<const char*, size_t>> expected = {
        {"BOOL", 1}, {"U8", 1},   {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2},
        {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
    for (const auto& entry : expected) {
        const char* name = entry.first;
        const size_t size = entry.second;
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

TEST_CASE("safetensors: F64 converts with round to nearest, overflowing to infinity") {
    const std::vector<double> v = {0x1.fffffe8p+127, 0x1.ffffffp+127, -0x1.ffffffp+127, 1e300, 1e-50, 0.1,
                                   std::nan("")};
    const std::string bytes = build_file({{"d", "F64", {int64_t(v.size())}, bytes_of(v)}});
    SafetensorsFile f("f64", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    const std::vector<float> got = f.get("d").read_f32();
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(got[0] == std::numeric_limits<float>::max());  // below the halfway point: stays finite
    CHECK(got[1] == inf);                                // the halfway point rounds to even: infinity
    CHECK(got[2] == -inf);
    CHECK(got[3] == inf);
    CHECK(got[4] == 0.0f);
    CHECK(got[5] == 0.1f);
    CHECK(std::isnan(got[6]));
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
        {"dtype missing",
         raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", kEight),
         {"tensor 'a': missing \"dtype\""}},
        {"dtype not a string", raw_file("{" + entry("5") + "}", kEight), {"tensor 'a': \"dtype\" is not a string"}},
        {"dtype unknown", raw_file("{" + entry(R"("Q4_K")") + "}", kEight), {"tensor 'a': unknown dtype 'Q4_K'"}},
        {"shape missing",
         raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", kEight),
         {"tensor 'a': missing \"shape\""}},
        {"shape not an array", raw_file("{" + entry(R"("F32")", "2") + "}", kEight), {"\"shape\" is not an array"}},
        {"shape of floats", raw_file("{" + entry(R"("F32")", "[2.0]") + "}", kEight), {"tensor 'a'", "not an integer"}},
        {"shape of strings", raw_file("{" + entry(R"("F32")", R"(["2"])") + "}", kEight), {"not an integer"}},
        {"negative dimension",
         raw_file("{" + entry(R"("F32")", "[-2]") + "}", kEight),
         {"tensor 'a': negative dimension -2"}},
        {"dimension past int64",
         raw_file("{" + entry(R"("F32")", "[18446744073709551615]") + "}", kEight),
         {"tensor 'a': dimension 18446744073709551615", "too large"}},
        {"dims overflow",
         raw_file("{" + entry(R"("F32")", "[4294967296,4294967296]") + "}", kEight),
         {"tensor 'a': shape [4294967296, 4294967296] has too many elements (the product overflows)"}},
        {"too many dims", raw_file("{" + entry(R"("F32")", rank65) + "}", kEight), {"65 dimensions"}},
        {"data_offsets missing",
         raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", kEight),
         {"tensor 'a': missing \"data_offsets\""}},
        {"data_offsets not a pair",
         raw_file("{" + entry(R"("F32")", "[2]", "[0]") + "}", kEight),
         {"not an array of two offsets"}},
        {"data_offsets floats", raw_file("{" + entry(R"("F32")", "[2]", "[0,8.0]") + "}", kEight), {"non-integer"}},
        {"data_offsets negative",
         raw_file("{" + entry(R"("F32")", "[2]", "[-8,0]") + "}", kEight),
         {"negative offset -8"}},
        {"end before begin",
         raw_file("{" + entry(R"("F32")", "[0]", "[8,0]") + "}", kEight),
         {"tensor 'a': data_offsets [8, 0] end before they begin"}},
        {"size mismatch",
         raw_file("{" + entry(R"("F32")", "[3]", "[0,8]") + "}", kEight),
         {"tensor 'a': data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 needs 12 bytes"}},
        {"byte size overflows",
         raw_file("{" + entry(R"("F32")", "[4611686018427387904]", "[0,8]") + "}", kEight),
         {"needs more than 2^64 bytes"}},
        {"data past the end",
         raw_file("{" + entry() + "}", std::string(4, '\0')),
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
        {"duplicate tensor name",
         raw_file("{" + entry() + "," + entry() + "}", kEight),
         {"header has tensor 'a' twice"}},
        {"duplicate key in an entry",
         raw_file(R"({"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", kEight),
         {"header has key 'dtype' twice"}},
        {"metadata not an object", raw_file(R"({"__metadata__":"pt"})"), {"__metadata__ is not a JSON object"}},
        {"metadata value not a string",
         raw_file(R"({"__metadata__":{"format":1}})"),
         {"__metadata__ value for 'format' is not a string"}},
        {"absurd nesting", raw_file(deep), {"header nests deeper than"}},
        {"control bytes in a name are escaped",
         raw_file(R"({"a\u001b[2J":{"dtype":"F99","shape":[],"data_offsets":[0,0]}})"),
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

TEST_CASE("safetensors: big headers: many tensors open quickly, absurdly many values are refused") {
    // 60000 tensors, in reverse order of their data: duplicate detection and
    // lookups must not be quadratic (a real single-file DeepSeek-V3 has 91k)
    constexpr int kTensors = 60000;
    std::string header = "{";
    for (int i = kTensors - 1; i >= 0; --i) {
        header += strprintf("%s\"model.layers.%d.weight\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                            i == kTensors - 1 ? "" : ",", i, 2 * i, 2 * i + 2);
    }
    header += "}";
    const std::string bytes = raw_file(header, std::string(2 * kTensors, '\x3f'));
    SafetensorsFile f("many", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    REQUIRE(f.tensors().size() == kTensors);
    CHECK(f.tensors()[0].name == "model.layers.0.weight");
    CHECK(f.get("model.layers.12345.weight").begin == 2 * 12345);

    std::string values = R"({"__metadata__":{"x":"y"},"junk":[)";
    for (int i = 0; i < (1 << 23) + 1; ++i) values += i ? ",0" : "0";
    values += "]}";
    const std::string huge = raw_file(values);
    CHECK(contains(
        error_of([&] { SafetensorsFile g("huge", reinterpret_cast<const uint8_t*>(huge.data()), huge.size()); }),
        "huge: header holds more than 8388608 values"));
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
    seeds.emplace_back("holes.safetensors", raw_file(R"({"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]},)"
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
    for (const auto& seed : fuzz_seeds()) {
        const std::string& name = seed.first;
        const std::string& bytes = seed.second;
        CAPTURE(name);
        CHECK(fuzz::exercise_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
        CHECK_MESSAGE(
            read_whole(corpus / name) == bytes,
            "fuzz/corpus/safetensors/"
                << name << " is missing or stale: rerun with MOELITE_WRITE_SAFETENSORS_SEEDS=fuzz/corpus/safetensors");
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
