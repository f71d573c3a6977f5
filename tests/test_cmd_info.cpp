// `moelite info`, end to end: the built binary on a good file (text and
// --json) and on a corrupted one (one error line naming the file, exit 1).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/gguf_writer.h"
#include "tests/test_util.h"

using namespace moelite;
using namespace moelite::test;
namespace fs = std::filesystem;

namespace {

void write_info_sample(const fs::path& path) {
    GgufWriter w(path.string());
    w.add("general.architecture", GgufValue("llama"));
    w.add("llama.block_count", GgufValue(uint32_t(2)));
    w.add("llama.rope.freq_base", GgufValue(10000.0f));
    w.add("tokenizer.chat_template", GgufValue(std::string(500, 'j') + "{{ end }}"));
    std::vector<std::string> tokens;
    for (int i = 0; i < 100; ++i) tokens.push_back("tok" + std::to_string(i));
    w.add("tokenizer.ggml.tokens", GgufValue(tokens));
    w.add("tokenizer.ggml.scores", GgufValue(std::vector<float>(100, -1.0f)));
    w.add_tensor("token_embd.weight", DType::F32, {64, 100});
    w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, {64, 64});
    w.add_tensor("blk.1.attn_q.weight", DType::Q8_0, {64, 64});
    const std::vector<uint8_t> zeros(64 * 100 * 4);
    w.write_tensor("token_embd.weight", zeros.data(), 64 * 100 * 4);
    w.write_tensor("blk.0.attn_q.weight", zeros.data(), 64 * 2 * 34);
    w.write_tensor("blk.1.attn_q.weight", zeros.data(), 64 * 2 * 34);
    w.finish();
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("moelite info: prints version, architecture, metadata, tensors and totals") {
    TempDir dir;
    const fs::path path = dir / "m.gguf";
    write_info_sample(path);
    std::string out;
    REQUIRE(run_command(moelite_binary().string() + " info " + path.string(), &out) == 0);
    CAPTURE(out);
    CHECK(contains(out, "GGUF version:  3"));
    CHECK(contains(out, "architecture:  llama"));
    CHECK(contains(out, "metadata (6 keys)"));
    CHECK(contains(out, "llama.block_count"));
    CHECK(contains(out, "[string x 100] \"tok0\", \"tok1\""));
    CHECK(contains(out, "... (509 bytes)"));  // the chat template, shortened
    CHECK_FALSE(contains(out, std::string(100, 'j')));
    CHECK(contains(out, "blk.0.attn_q.weight"));
    CHECK(contains(out, "[64, 100]"));
    CHECK(contains(out, "totals: 3 tensors"));
    CHECK(contains(out, "(34304 bytes)"));  // 25600 + 2 * 4352
    CHECK(contains(out, "q8_0"));

    REQUIRE(run_command(moelite_binary().string() + " info --no-tensors --no-metadata " + path.string(), &out) == 0);
    CHECK_FALSE(contains(out, "llama.block_count"));
    CHECK_FALSE(contains(out, "blk.0.attn_q.weight"));
    CHECK(contains(out, "totals: 3 tensors"));
}

TEST_CASE("moelite info --json: one JSON object with the same content") {
    TempDir dir;
    const fs::path path = dir / "m.gguf";
    write_info_sample(path);
    std::string out;
    REQUIRE(run_command(moelite_binary().string() + " info --json " + path.string(), &out) == 0);
    const auto j = nlohmann::json::parse(out);
    CHECK(j["version"] == 3);
    CHECK(j["architecture"] == "llama");
    CHECK(j["metadata"]["llama.block_count"]["type"] == "u32");
    CHECK(j["metadata"]["llama.block_count"]["value"] == 2);
    CHECK(j["metadata"]["llama.rope.freq_base"]["value"] == 10000.0);
    CHECK(j["metadata"]["tokenizer.chat_template"]["value"].get<std::string>().size() == 509);
    const auto& tokens = j["metadata"]["tokenizer.ggml.tokens"];
    CHECK(tokens["type"] == "array");
    CHECK(tokens["element_type"] == "string");
    CHECK(tokens["count"] == 100);
    CHECK(tokens["values"][1] == "tok1");
    CHECK(tokens["truncated"] == true);
    REQUIRE(j["tensors"].size() == 3);
    CHECK(j["tensors"][1]["name"] == "blk.0.attn_q.weight");
    CHECK(j["tensors"][1]["type"] == "q8_0");
    CHECK(j["tensors"][1]["shape"] == nlohmann::json::array({64, 64}));
    CHECK(j["tensors"][1]["bytes"] == 4352);
    CHECK(j["totals"]["tensors"] == 3);
    CHECK(j["totals"]["bytes"] == 34304);
    CHECK(j["totals"]["by_type"]["q8_0"]["tensors"] == 2);

    REQUIRE(run_command(moelite_binary().string() + " info --json --no-tensors " + path.string(), &out) == 0);
    CHECK_FALSE(nlohmann::json::parse(out).contains("tensors"));
}

TEST_CASE("moelite info: a corrupted file gives one error line naming the file, exit 1") {
    TempDir dir;
    const fs::path path = dir / "m.gguf";
    write_info_sample(path);
    fs::resize_file(path, fs::file_size(path) - 100);
    std::string out;
    CHECK(run_command(moelite_binary().string() + " info " + path.string(), &out) == 1);
    CAPTURE(out);
    CHECK(contains(out, path.string() + ": tensor 'blk.1.attn_q.weight'"));
    CHECK(contains(out, "runs past the end of the file"));
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);

    CHECK(run_command(moelite_binary().string() + " info " + (dir / "nothing.gguf").string(), &out) == 1);
    CHECK(contains(out, "nothing.gguf: cannot open"));
}
