// GGUF reading and writing: round trips through GgufWriter and GgufFile with
// every value type, the exact bytes of a small file (from the format's
// description), the writer's temporary-file discipline, typed getters, and
// hostile inputs: one crafted file per validation rule, each of which must
// give an Error naming the file and the problem; every truncation of a valid
// file; and the inputs the fuzzer once crashed on (tests/data/gguf-crashes).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "tests/gguf_test_util.h"
#include "tests/test_util.h"

using namespace moelite;
using namespace moelite::test;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// One metadata entry of each scalar type and an array of each element type.
std::vector<GgufKV> every_value_type() {
    std::vector<GgufKV> kv;
    kv.push_back({"t.u8", GgufValue(uint8_t(200))});
    kv.push_back({"t.i8", GgufValue(int8_t(-100))});
    kv.push_back({"t.u16", GgufValue(uint16_t(60000))});
    kv.push_back({"t.i16", GgufValue(int16_t(-30000))});
    kv.push_back({"t.u32", GgufValue(uint32_t(4000000000u))});
    kv.push_back({"t.i32", GgufValue(int32_t(-2000000000))});
    kv.push_back({"t.f32", GgufValue(1.5e-7f)});
    kv.push_back({"t.bool", GgufValue(true)});
    kv.push_back({"t.string", GgufValue("h\xc3\xa9llo\n\"world\"")});
    kv.push_back({"t.empty_string", GgufValue(std::string())});
    kv.push_back({"t.u64", GgufValue(uint64_t(18000000000000000000ull))});
    kv.push_back({"t.i64", GgufValue(int64_t(-9000000000000000000ll))});
    kv.push_back({"t.f64", GgufValue(3.141592653589793)});
    kv.push_back({"a.u8", GgufValue(std::vector<uint8_t>{0, 1, 255})});
    kv.push_back({"a.i8", GgufValue(std::vector<int8_t>{-128, 0, 127})});
    kv.push_back({"a.u16", GgufValue(std::vector<uint16_t>{1, 65535})});
    kv.push_back({"a.i16", GgufValue(std::vector<int16_t>{-32768, 32767})});
    kv.push_back({"a.u32", GgufValue(std::vector<uint32_t>{7, 8, 9})});
    kv.push_back({"a.i32", GgufValue(std::vector<int32_t>{-1, 0, 1, 2})});
    kv.push_back({"a.f32", GgufValue(std::vector<float>{0.5f, -0.0f, std::numeric_limits<float>::infinity()})});
    kv.push_back({"a.bool", GgufValue(std::vector<bool>{true, false, true})});
    kv.push_back({"a.string", GgufValue(std::vector<std::string>{"<s>", "", "</s>", std::string("a\0b", 3)})});
    kv.push_back({"a.u64", GgufValue(std::vector<uint64_t>{0, ~uint64_t(0)})});
    kv.push_back({"a.i64", GgufValue(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 5})});
    kv.push_back({"a.f64", GgufValue(std::vector<double>{1e300, -2.5})});
    kv.push_back({"a.empty_u32", GgufValue(std::vector<uint32_t>{})});
    kv.push_back({"a.empty_string", GgufValue(std::vector<std::string>{})});
    kv.push_back({"a.nan", GgufValue(std::vector<float>{std::numeric_limits<float>::quiet_NaN()})});
    return kv;
}

struct TensorSpec {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
};

const std::vector<TensorSpec>& some_tensors() {
    static const std::vector<TensorSpec> specs = {
        {"token_embd.weight", DType::F32, {8, 5}},
        {"blk.0.attn_q.weight", DType::F16, {7, 3}},  // 42 bytes: padding follows
        {"blk.0.ffn_up.weight", DType::Q4_0, {64, 2}},
        {"blk.0.ffn_down.weight", DType::Q8_0, {32, 1, 2}},
        {"blk.0.exps.weight", DType::Q4_K, {256, 2, 1, 3}},
        {"output_norm.weight", DType::F32, {1}},
    };
    return specs;
}

// Deterministic bytes for a tensor (any byte pattern is a valid payload).
std::vector<uint8_t> tensor_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> b(n);
    for (auto& x : b) x = uint8_t(rng());
    return b;
}

// Writes every_value_type() and some_tensors() to `path`.
void write_sample(const fs::path& path, std::optional<uint32_t> alignment = std::nullopt) {
    GgufWriter w(path.string());
    w.add("general.architecture", GgufValue("llama"));
    if (alignment) w.add(kGgufAlignmentKey, GgufValue(*alignment));
    for (const GgufKV& kv : every_value_type()) w.add(kv.key, kv.value);
    std::vector<size_t> sizes;
    for (const TensorSpec& t : some_tensors()) sizes.push_back(w.add_tensor(t.name, t.type, t.ne));
    for (size_t i = 0; i < some_tensors().size(); ++i) {
        const auto data = tensor_bytes(sizes[i], uint32_t(i));
        w.write_tensor(some_tensors()[i].name, data.data(), data.size());
    }
    w.finish();
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("gguf: every metadata value type and tensor type round-trips through the writer and reader") {
    TempDir dir;
    for (std::optional<uint32_t> alignment : {std::optional<uint32_t>(), std::optional<uint32_t>(64)}) {
        CAPTURE(alignment.value_or(0));
        const fs::path path = dir / "sample.gguf";
        write_sample(path, alignment);
        auto f = GgufFile::open(path.string());
        CHECK(f->path() == path.string());
        CHECK(f->version() == 3);
        CHECK(f->alignment() == alignment.value_or(32));
        CHECK(f->data_offset() % f->alignment() == 0);
        CHECK(f->get_string("general.architecture") == "llama");

        const auto expected = every_value_type();
        const size_t first = alignment ? 2 : 1;
        REQUIRE(f->metadata().size() == expected.size() + first);
        for (size_t i = 0; i < expected.size(); ++i) {
            CAPTURE(expected[i].key);
            CHECK(f->metadata()[first + i].key == expected[i].key);
            CHECK(f->metadata()[first + i].value == expected[i].value);
            CHECK(f->find(expected[i].key) == &f->metadata()[first + i].value);
        }
        CHECK(f->get_array<std::string>("a.string")[3] == std::string("a\0b", 3));
        CHECK(f->get_array<bool>("a.bool") == std::vector<bool>{true, false, true});

        REQUIRE(f->tensors().size() == some_tensors().size());
        for (size_t i = 0; i < some_tensors().size(); ++i) {
            const TensorSpec& spec = some_tensors()[i];
            const GgufTensorInfo& t = f->tensors()[i];
            CAPTURE(spec.name);
            CHECK(t.name == spec.name);
            CHECK(t.type == spec.type);
            CHECK(t.n_dims == int(spec.ne.size()));
            for (size_t d = 0; d < 4; ++d) CHECK(t.ne[d] == (d < spec.ne.size() ? spec.ne[d] : 1));
            CHECK(t.offset % f->alignment() == 0);
            CHECK(size_t(t.data - f->file_data()) == f->data_offset() + t.offset);
            const auto data = tensor_bytes(t.nbytes, uint32_t(i));
            CHECK(std::memcmp(t.data, data.data(), t.nbytes) == 0);
            CHECK(f->find_tensor(spec.name) == &t);
        }
        CHECK(f->find_tensor("nope") == nullptr);
        CHECK(f->tensors()[1].nbytes == 42);
        CHECK(f->tensors()[2].nbytes == 4 * 18);
        CHECK(f->tensors()[4].nbytes == 6 * 144);
        // The last tensor is padded too, as llama.cpp's writer does.
        const GgufTensorInfo& last = f->tensors().back();
        CHECK(f->file_size() == f->data_offset() + last.offset + f->alignment());
    }
}

TEST_CASE("gguf: the writer's bytes follow the format byte for byte") {
    TempDir dir;
    const fs::path path = dir / "tiny.gguf";
    GgufWriter w(path.string());
    w.add("k", GgufValue(uint32_t(7)));
    w.add_tensor("t", DType::F32, {2});
    const float data[2] = {1.0f, -2.0f};
    w.write_tensor("t", data, sizeof data);
    w.finish();

    RawGguf expect;
    expect.header(1, 1).kv_u32("k", 7).tensor("t", {2}, 0, 0).pad(32).raw(data, 8).pad(32);
    CHECK(read_all(path) == expect.b);
}

TEST_CASE("gguf: the writer streams tensor data in pieces and checks sizes and order") {
    TempDir dir;
    const fs::path path = dir / "pieces.gguf";
    {
        GgufWriter w(path.string());
        const size_t a = w.add_tensor("a", DType::F32, {1000});
        const size_t b = w.add_tensor("b", DType::F16, {3});
        CHECK(a == 4000);
        CHECK(b == 6);
        const auto da = tensor_bytes(a, 1);
        const auto db = tensor_bytes(b, 2);
        CHECK_THROWS_WITH_AS(w.write_tensor("b", db.data(), b), doctest::Contains("out of order"), Error);
        CHECK_THROWS_WITH_AS(w.write_tensor("a", da.data(), a - 1), doctest::Contains("need 4000"), Error);
        w.append_tensor_data(da.data(), 1000);
        w.append_tensor_data(da.data() + 1000, 3000);
        CHECK_THROWS_WITH_AS(w.append_tensor_data(db.data(), 7), doctest::Contains("only 6 of its 6 bytes"), Error);
        CHECK_THROWS_WITH_AS(w.add_tensor("c", DType::F32, {1}), doctest::Contains("after tensor data"), Error);
        CHECK_THROWS_WITH_AS(w.finish(), doctest::Contains("'b' is incomplete"), Error);
        w.append_tensor_data(db.data(), 6);
        CHECK_THROWS_WITH_AS(w.append_tensor_data(db.data(), 1), doctest::Contains("2 declared tensors"), Error);
        w.finish();
        auto f = GgufFile::open(path.string());
        CHECK(std::memcmp(f->get_tensor("a").data, da.data(), a) == 0);
        CHECK(std::memcmp(f->get_tensor("b").data, db.data(), b) == 0);
    }
    // Nothing but the output is left in the directory.
    size_t entries = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) entries += e.path().filename() == "pieces.gguf" ? 1 : 100;
    CHECK(entries == 1);
}

TEST_CASE("gguf: the writer rejects bad declarations with the file named") {
    GgufWriter w("out/x.gguf");
    w.add("a", GgufValue(uint8_t(1)));
    CHECK_THROWS_WITH_AS(w.add("a", GgufValue(uint8_t(2))), "out/x.gguf: duplicate metadata key 'a'", Error);
    CHECK_THROWS_WITH_AS(w.add("", GgufValue(true)), doctest::Contains("empty metadata key"), Error);
    CHECK_THROWS_WITH_AS(w.add(kGgufAlignmentKey, GgufValue(uint32_t(24))), doctest::Contains("power of two"), Error);
    CHECK_THROWS_WITH_AS(w.add(kGgufAlignmentKey, GgufValue(uint64_t(64))), doctest::Contains("must be a u32"), Error);
    w.add_tensor("t", DType::F32, {4});
    CHECK_THROWS_WITH_AS(w.add_tensor("t", DType::F32, {4}), doctest::Contains("duplicate tensor name 't'"), Error);
    CHECK_THROWS_WITH_AS(w.add_tensor("q", DType::Q4_0, {48}), doctest::Contains("block size 32"), Error);
    CHECK_THROWS_WITH_AS(w.add_tensor("z", DType::F32, {4, 0}), doctest::Contains("must be positive"), Error);
    CHECK_THROWS_WITH_AS(w.add_tensor("f", DType::F32, {1, 1, 1, 1, 1}), doctest::Contains("5 dimensions"), Error);
    CHECK_THROWS_WITH_AS(w.add_tensor(std::string(64, 'n'), DType::F32, {1}), doctest::Contains("at most 63"), Error);
    CHECK_THROWS_WITH_AS(w.add_tensor("big", DType::F32, {int64_t(1) << 62, 4}), doctest::Contains("too large"), Error);
    // Destroyed unfinished before any data: nothing was ever created.
}

TEST_CASE("gguf: an unfinished writer leaves nothing behind and never touches an existing output") {
    TempDir dir;
    const fs::path path = dir / "model.gguf";
    write_sample(path);
    const auto before = read_all(path);
    try {
        GgufWriter w(path.string());
        w.add_tensor("a", DType::F32, {1 << 20});
        const auto data = tensor_bytes(4 << 20, 3);
        w.append_tensor_data(data.data(), 1 << 20);
        // The temporary file exists while writing...
        bool temp_seen = false;
        for (const auto& e : fs::directory_iterator(dir.path()))
            temp_seen |= contains(e.path().filename().string(), "model.gguf.tmp-");
        CHECK(temp_seen);
        throw std::runtime_error("conversion failed");
    } catch (const std::runtime_error&) {
    }
    // ...and is gone after the exception; the old file is intact.
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
    CHECK(names == std::vector<std::string>{"model.gguf"});
    CHECK(read_all(path) == before);
}

TEST_CASE("gguf: a file with no tensors and no metadata") {
    TempDir dir;
    const fs::path path = dir / "empty.gguf";
    GgufWriter w(path.string());
    w.finish();
    auto f = GgufFile::open(path.string());
    CHECK(f->metadata().empty());
    CHECK(f->tensors().empty());
    CHECK(f->data_offset() == 32);
    CHECK(f->file_size() == 32);
}

TEST_CASE("gguf: typed getters convert what fits and name the file and key otherwise") {
    RawGguf r;
    r.header(0, 6).kv_u32("u32", 5);
    r.str("i8").u32(1).u8(uint8_t(-3));
    r.str("i64").u32(11).i64(int64_t(1) << 40);
    r.kv_string("s", "text");
    r.str("f").u32(6).raw("\x00\x00\xc0\x3f", 4);  // 1.5f
    r.str("arr").u32(9).u32(5).u64(2).u32(uint32_t(-1)).u32(4);
    auto f = GgufFile::from_memory(r.b.data(), r.b.size(), "getters.gguf");
    CHECK(f->get_u32("u32") == 5);
    CHECK(f->get_u64("u32") == 5);
    CHECK(f->get_i64("i8") == -3);
    CHECK(f->get_f32("f") == 1.5f);
    CHECK(f->get_f32("u32") == 5.0f);
    CHECK(f->get_u64("i64") == uint64_t(1) << 40);
    CHECK(f->get_string("s") == "text");
    CHECK(f->get_int_array("arr") == std::vector<int64_t>{-1, 4});
    CHECK(f->get_array<int32_t>("arr").size() == 2);
    CHECK(f->opt_u32("missing") == std::nullopt);
    CHECK(f->opt_u32("u32") == 5u);
    CHECK(f->opt_array<float>("missing") == nullptr);
    CHECK_THROWS_WITH_AS(f->get_u32("missing"), "getters.gguf: metadata key 'missing' not found", Error);
    CHECK_THROWS_WITH_AS(f->get_u32("i8"), doctest::Contains("getters.gguf: metadata key 'i8' should be"), Error);
    CHECK_THROWS_WITH_AS(f->get_u32("i64"), doctest::Contains("'i64' should be an integer in [0, 2^32)"), Error);
    CHECK_THROWS_WITH_AS(f->get_string("u32"), doctest::Contains("should be a string, but is u32 5"), Error);
    CHECK_THROWS_WITH_AS(f->get_bool("s"), doctest::Contains("should be a bool, but is string \"text\""), Error);
    CHECK_THROWS_WITH_AS(f->get_array<uint32_t>("arr"),
                         doctest::Contains("should be array of u32, but is array of i32"), Error);
    CHECK_THROWS_WITH_AS(f->opt_f32("s"), doctest::Contains("should be a number"), Error);
    CHECK_THROWS_WITH_AS(f->get_tensor("w"), "getters.gguf: tensor 'w' not found", Error);
}

TEST_CASE("gguf: a tensor view points into the file with contiguous strides") {
    TempDir dir;
    const fs::path path = dir / "view.gguf";
    write_sample(path);
    auto f = GgufFile::open(path.string());
    const GgufTensorInfo& info = f->get_tensor("blk.0.ffn_down.weight");
    Tensor t;
    gguf_tensor_view(info, t);
    CHECK(t.type == DType::Q8_0);
    CHECK(t.ne[0] == 32);
    CHECK(t.ne[2] == 2);
    CHECK(t.nb[0] == 34);
    CHECK(t.nb[1] == 34);
    CHECK(t.nb[2] == 34);
    CHECK(t.is_contiguous());
    CHECK(t.nbytes() == info.nbytes);
    CHECK(t.data == info.data);
    CHECK(t.name == "blk.0.ffn_down.weight");
    CHECK((t.flags & kTensorWeight) != 0);
    CHECK(info.shape_string() == "[32, 1, 2]");
}

TEST_CASE("gguf: value printing shortens long strings and arrays") {
    CHECK(GgufValue(uint32_t(7)).to_string() == "7");
    CHECK(GgufValue(-1.5f).to_string() == "-1.5");
    CHECK(GgufValue("a\"b\n").to_string() == "\"a\\\"b\\n\"");
    CHECK(GgufValue(std::string(100, 'x')).to_string(8, 4) == "\"xxxx\"... (100 bytes)");
    CHECK(GgufValue(std::vector<int32_t>{1, 2, 3}).to_string(2) == "[i32 x 3] 1, 2, ...");
    CHECK(GgufValue(std::vector<std::string>{"a"}).to_string() == "[string x 1] \"a\"");
    CHECK(GgufValue(std::vector<bool>{}).to_string() == "[bool x 0]");
}

// ---- hostile input: one crafted file per rule ----

namespace {

// A valid base: one u32 key and one f32 tensor of `n` elements at offset 0.
RawGguf one_tensor_file(int64_t n = 4) {
    RawGguf r;
    r.header(1, 1).kv_u32("general.alignment", 32).tensor("w", {n}, 0, 0).pad(32).zeros(size_t(n) * 4);
    return r;
}

void check_rejected(const RawGguf& r, const std::string& problem) {
    const std::string msg = gguf_parse_error(r.b, "crafted.gguf");
    CAPTURE(msg);
    CHECK(msg.rfind("crafted.gguf: ", 0) == 0);
    CHECK(contains(msg, problem));
}

}  // namespace

TEST_CASE("gguf hostile: the valid base file parses") {
    CHECK(gguf_parse_error(one_tensor_file().b) == "");
}

TEST_CASE("gguf hostile: magic, version and truncated header") {
    RawGguf r = one_tensor_file();
    r.b[0] = 'G', r.b[3] = 'X';
    check_rejected(r, "not a GGUF file: bad magic \"GGUX\"");
    check_rejected(RawGguf{{'G', 'G'}}, "not a GGUF file: only 2 bytes");
    RawGguf v1;
    v1.header(0, 0, 1);
    check_rejected(v1, "GGUF version 1 is obsolete");
    RawGguf v4;
    v4.header(0, 0, 4);
    check_rejected(v4, "unsupported GGUF version 4");
    RawGguf be;
    be.header(0, 0, 0x03000000u);
    check_rejected(be, "big-endian");
    RawGguf v2;
    v2.header(0, 0, 2);
    CHECK(gguf_parse_error(v2.b) == "");
    RawGguf cut;
    cut.header(0, 0);
    cut.b.resize(20);
    check_rejected(cut, "truncated file: the metadata count needs 8 bytes at offset 16");
}

TEST_CASE("gguf hostile: counts that cannot fit in the file") {
    RawGguf kv;
    kv.header(0, uint64_t(1) << 60);
    check_rejected(kv, "claims 1152921504606846976 metadata entries");
    RawGguf t;
    t.header(~uint64_t(0), 0);
    check_rejected(t, "claims 18446744073709551615 tensors");
    RawGguf t2;  // 2 tensors need at least 64 bytes after the header
    t2.header(2, 0).zeros(40);
    check_rejected(t2, "claims 2 tensors");
}

TEST_CASE("gguf hostile: strings and arrays longer than the file") {
    RawGguf key;
    key.header(0, 1).u64(1000).raw("abc", 3).zeros(10);
    check_rejected(key, "metadata entry 0: truncated file: the key of 1000 bytes at offset 32 runs past the end");
    RawGguf val;
    val.header(0, 1).str("k").u32(8).u64(~uint64_t(0) - 2).zeros(8);
    check_rejected(val, "metadata entry 0 ('k'): truncated file: a string value of 18446744073709551613 bytes");
    RawGguf arr;
    arr.header(0, 1).str("k").u32(9).u32(12).u64(uint64_t(1) << 61).zeros(16);
    check_rejected(arr, "array of 2305843009213693952 f64 elements");
    RawGguf sarr;
    sarr.header(0, 1).str("k").u32(9).u32(8).u64(3).str("a").str("b").u64(5);
    check_rejected(sarr, "an array string of 5 bytes");
    RawGguf sarr2;
    sarr2.header(0, 1).str("k").u32(9).u32(8).u64(uint64_t(1) << 40).zeros(16);
    check_rejected(sarr2, "array of 1099511627776 strings cannot fit");
    RawGguf name;
    name.header(1, 0).u64(99).zeros(30);
    check_rejected(name, "tensor 0: truncated file: the tensor name of 99 bytes");
}

TEST_CASE("gguf hostile: value types, keys and nesting") {
    RawGguf type;
    type.header(0, 1).str("k").u32(13).u64(0);
    check_rejected(type, "metadata entry 0 ('k'): unknown value type id 13");
    RawGguf elem;
    elem.header(0, 1).str("k").u32(9).u32(77).u64(0);
    check_rejected(elem, "unknown value type id 77");
    RawGguf nested;
    nested.header(0, 1).str("k").u32(9).u32(9).u64(0).zeros(8);
    check_rejected(nested, "nested arrays are not supported");
    RawGguf dup;
    dup.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
    check_rejected(dup, "metadata entry 1 ('k'): duplicate metadata key 'k'");
    RawGguf empty;
    empty.header(0, 1).kv_u32("", 1);
    check_rejected(empty, "metadata entry 0: empty key");
    // Names from the file are escaped and cut in messages.
    RawGguf escape;
    escape.header(0, 2).kv_u32("\x1b[2J", 1).kv_u32("\x1b[2J", 2);
    check_rejected(escape, "duplicate metadata key '\\x1b[2J'");
    const std::string long_key(5000, 'k');
    RawGguf long_dup;
    long_dup.header(0, 2).kv_u32(long_key, 1).kv_u32(long_key, 2);
    const std::string msg = gguf_parse_error(long_dup.b);
    CHECK(contains(msg, "duplicate metadata key 'kkkk"));
    CHECK(msg.size() < 400);
}

TEST_CASE("gguf hostile: alignment") {
    for (uint32_t a : {0u, 3u, 48u}) {
        RawGguf r;
        r.header(0, 1).kv_u32("general.alignment", a);
        check_rejected(r, "is not a power of two");
    }
    RawGguf s;
    s.header(0, 1).kv_string("general.alignment", "32");
    check_rejected(s, "metadata 'general.alignment': must be a non-negative integer, not string \"32\"");
    RawGguf big;
    big.header(0, 1).str("general.alignment").u32(10).u64(uint64_t(1) << 40);
    check_rejected(big, "is too large");
    RawGguf ok;  // any integer type is accepted when the value is good
    ok.header(0, 1).str("general.alignment").u32(0).u8(64);
    CHECK(gguf_parse_error(ok.b) == "");
}

TEST_CASE("gguf hostile: tensor shapes and types") {
    auto with_tensor = [](std::vector<int64_t> ne, uint32_t type, uint32_t n_dims_override = 0) {
        RawGguf r;
        r.header(1, 0).str("w").u32(n_dims_override ? n_dims_override : uint32_t(ne.size()));
        for (int64_t n : ne) r.i64(n);
        r.u32(type).u64(0).pad(32).zeros(4096);
        return r;
    };
    check_rejected(with_tensor({}, 0), "tensor 0 ('w'): 0 dimensions (must be 1 to 4)");
    check_rejected(with_tensor({1, 1, 1, 1, 1}, 0), "5 dimensions");
    check_rejected(with_tensor({4, 0}, 0), "tensor 0 ('w'): dimension 1 is 0 (must be positive)");
    check_rejected(with_tensor({-4}, 0), "dimension 0 is -4");
    check_rejected(with_tensor({int64_t(1) << 32, int64_t(1) << 32}, 0),
                   "shape [4294967296, 4294967296] has more elements");
    check_rejected(with_tensor({int64_t(1) << 62, 2}, 0), "more elements than fit in 64 bits");
    check_rejected(with_tensor({int64_t(1) << 62}, 0), "shape [4611686018427387904] of type f32 is too large");
    check_rejected(with_tensor({48}, 2), "ne[0] = 48 is not a multiple of the q4_0 block size 32");
    check_rejected(with_tensor({4}, 4), "unknown tensor type id 4");
    check_rejected(with_tensor({4}, 1000), "unknown tensor type id 1000");
    check_rejected(with_tensor({4}, 0, 9), "9 dimensions");
}

TEST_CASE("gguf hostile: tensor names, offsets and overlaps") {
    RawGguf dup;
    dup.header(2, 0).tensor("w", {4}, 0, 0).tensor("w", {4}, 0, 32).pad(32).zeros(64);
    check_rejected(dup, "tensor 1 ('w'): duplicate tensor name 'w'");
    RawGguf empty;
    empty.header(1, 0).tensor("", {4}, 0, 0).pad(32).zeros(32);
    check_rejected(empty, "tensor 0: empty tensor name");
    RawGguf unaligned;
    unaligned.header(1, 0).tensor("w", {4}, 0, 16).pad(32).zeros(64);
    check_rejected(unaligned, "tensor 'w': offset 16 is not a multiple of the alignment 32");
    RawGguf past;
    past.header(1, 0).tensor("w", {4}, 0, 32).pad(32).zeros(40);
    check_rejected(past, "tensor 'w': data at offset 32 + 16 bytes runs past the end of the file");
    RawGguf size_past;
    size_past.header(1, 0).tensor("w", {100}, 0, 0).pad(32).zeros(64);
    check_rejected(size_past, "data at offset 0 + 400 bytes runs past the end");
    RawGguf far;
    far.header(1, 0).tensor("w", {4}, 0, ~uint64_t(0) - 31).pad(32).zeros(64);
    check_rejected(far, "runs past the end");
    RawGguf overlap;
    overlap.header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32).pad(32).zeros(128);
    check_rejected(overlap, "tensors 'a' (offset 0, 64 bytes) and 'b' (offset 32) overlap");
    RawGguf no_data;  // the data section would start past the end
    no_data.header(1, 0).tensor("w", {4}, 0, 0);
    check_rejected(no_data, "the data section would start at offset");
    // Tensors in any order, with gaps, are fine when they do not overlap.
    RawGguf shuffled;
    shuffled.header(2, 0).tensor("a", {4}, 0, 64).tensor("b", {8}, 0, 0).pad(32).zeros(96);
    CHECK(gguf_parse_error(shuffled.b) == "");
}

TEST_CASE("gguf hostile: a file on disk is named by its path") {
    TempDir dir;
    const fs::path path = dir / "bad.gguf";
    RawGguf r = one_tensor_file();
    r.b.resize(r.b.size() - 1);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(r.b.data()), std::streamsize(r.b.size()));
    CHECK_THROWS_WITH_AS(
        GgufFile::open(path.string()),
        doctest::Contains((path.string() + ": tensor 'w': data at offset 0 + 16 bytes runs past").c_str()), Error);
    CHECK_THROWS_WITH_AS(GgufFile::open((dir / "missing.gguf").string()),
                         doctest::Contains("missing.gguf: cannot open"), Error);
    std::ofstream(dir / "zero.gguf");
    CHECK_THROWS_WITH_AS(GgufFile::open((dir / "zero.gguf").string()), doctest::Contains("zero.gguf: not a GGUF file"),
                         Error);
}

TEST_CASE("gguf hostile: every truncation of a valid file errors cleanly or stays in bounds") {
    TempDir dir;
    const fs::path path = dir / "sample.gguf";
    write_sample(path);
    const auto bytes = read_all(path);
    REQUIRE(bytes.size() > 1000);
    size_t errors = 0, parsed = 0;
    for (size_t n = 0; n <= bytes.size(); ++n) {
        const std::string msg = gguf_parse_error(bytes.data(), n, "cut.gguf");
        CAPTURE(n);
        REQUIRE(msg != "<tensor out of bounds>");
        if (msg.empty()) {
            ++parsed;
        } else {
            ++errors;
            REQUIRE(msg.rfind("cut.gguf: ", 0) == 0);
        }
    }
    // Only the full file and cuts inside the last tensor's padding parse.
    CHECK(parsed >= 1);
    CHECK(parsed <= 32);
    CHECK(errors + parsed == bytes.size() + 1);
}

TEST_CASE("gguf hostile: single-byte corruptions of a valid file never crash") {
    TempDir dir;
    const fs::path path = dir / "sample.gguf";
    write_sample(path);
    const auto bytes = read_all(path);
    std::mt19937 rng(7);
    size_t errors = 0;
    for (size_t pos = 0; pos < bytes.size(); ++pos) {
        for (uint8_t v : {uint8_t(0), uint8_t(0xff), uint8_t(rng())}) {
            auto copy = bytes;
            copy[pos] = v;
            const std::string msg = gguf_parse_error(copy, "flip.gguf");
            REQUIRE(msg != "<tensor out of bounds>");
            if (!msg.empty()) {
                ++errors;
                REQUIRE(msg.rfind("flip.gguf: ", 0) == 0);
            }
        }
    }
    CHECK(errors > 0);
}

TEST_CASE("gguf hostile: inputs the fuzzer found are rejected cleanly (tests/data/gguf-crashes)") {
    const fs::path dir = source_dir() / "tests" / "data" / "gguf-crashes";
    REQUIRE(fs::is_directory(dir));
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file() || e.path().filename() == "README.md") continue;
        const auto bytes = read_all(e.path());
        const std::string msg = gguf_parse_error(bytes, e.path().filename().string());
        CAPTURE(e.path().filename().string());
        CAPTURE(msg);
        CHECK(msg != "<tensor out of bounds>");
        if (!msg.empty()) CHECK(msg.rfind(e.path().filename().string() + ": ", 0) == 0);
        ++n;
    }
    MESSAGE(n << " regression inputs");
}

// ---- the fuzzer's seed corpus (fuzz/corpus/gguf) ----

namespace {

// Small valid files made by GgufWriter; regenerate the committed copies with
// MOELITE_WRITE_GGUF_CORPUS=1 ./build/moelite_tests -tc='*seed corpus*'.
void write_seed_corpus(const fs::path& dir) {
    {
        GgufWriter w((dir / "seed-empty").string());
        w.finish();
    }
    {
        GgufWriter w((dir / "seed-small").string());
        w.add("general.architecture", GgufValue("llama"));
        w.add("llama.block_count", GgufValue(uint32_t(1)));
        w.add("tokenizer.ggml.tokens", GgufValue(std::vector<std::string>{"<s>", "a", "b"}));
        w.add_tensor("token_embd.weight", DType::F32, {4, 3});
        w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, {32});
        const auto a = tensor_bytes(48, 1), b = tensor_bytes(34, 2);
        w.write_tensor("token_embd.weight", a.data(), a.size());
        w.write_tensor("blk.0.attn_q.weight", b.data(), b.size());
        w.finish();
    }
    {
        GgufWriter w((dir / "seed-all-types").string());
        for (const GgufKV& kv : every_value_type()) w.add(kv.key, kv.value);
        w.add_tensor("f16", DType::F16, {3, 2});
        w.add_tensor("q4_0", DType::Q4_0, {32});
        w.add_tensor("bf16", DType::BF16, {1, 1, 1, 2});
        const auto d = tensor_bytes(18, 3);
        w.write_tensor("f16", d.data(), 12);
        w.write_tensor("q4_0", d.data(), 18);
        w.write_tensor("bf16", d.data(), 4);
        w.finish();
    }
    {
        GgufWriter w((dir / "seed-align64").string());
        w.add(kGgufAlignmentKey, GgufValue(uint32_t(64)));
        w.add("x", GgufValue(std::vector<int32_t>{1, -1}));
        w.add_tensor("a", DType::I8, {3});
        w.add_tensor("b", DType::F64, {2, 2});
        const auto d = tensor_bytes(32, 4);
        w.write_tensor("a", d.data(), 3);
        w.write_tensor("b", d.data(), 32);
        w.finish();
    }
}

}  // namespace

TEST_CASE("gguf: the fuzz seed corpus is valid and small") {
    const fs::path dir = source_dir() / "fuzz" / "corpus" / "gguf";
    if (const char* env = std::getenv("MOELITE_WRITE_GGUF_CORPUS"); env && *env) {
        fs::create_directories(dir);
        write_seed_corpus(dir);
    }
    REQUIRE(fs::is_directory(dir));
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        CAPTURE(e.path().filename().string());
        CHECK(fs::file_size(e.path()) <= 4096);
        CHECK(gguf_parse_error(read_all(e.path())) == "");
        ++n;
    }
    CHECK(n >= 4);
}
