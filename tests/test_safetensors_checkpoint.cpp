// core/safetensors, checkpoints and FP8: directories (index, single file,
// loose shards) are checked against their shards, FP8 block scales
// dequantize exactly, and the four checkpoint fixtures open and read in full.
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

json good_weight_map() {
    return {{"x.weight", kShard1}, {"y", kShard1}, {"z", kShard2}, {"a", kShard2}};
}

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
    SafetensorsCheckpoint by_index((dir / "model.safetensors.index.json").string());
    CHECK(by_index.has_index());
    CHECK(by_index.names() == c.names());
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
                const float want =
                    fp8_e4m3_to_fp32(w.data[r * k.cols + c]) * scales[size_t(r / k.br * scale_cols + c / k.bc)];
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
        const std::string msg =
            error_of([&] { fp8_dequantize_rows(f.get("w"), f.get("w_scale_inv"), 0, 1, out.data()); });
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
        for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
            const std::string tensor = it.key(), shard = it->get<std::string>();
            const SafetensorsTensor* t = c.find(tensor);
            REQUIRE_MESSAGE(t, tensor);
            CHECK(fs::path(t->file->path()).filename() == shard);
            shards.insert(shard);
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
    const std::string bytes =
        read_whole(test::fixtures_dir() / "deepseek-v3-tiny" / "model-00001-of-00003.safetensors");
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
