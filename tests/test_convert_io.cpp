// convert/ end to end: bad input, interruption, the tokenizer, the `moelite
// convert` / `moelite quantize` binaries, and converted fixtures run through
// the runtime against their expected logits. (test_convert.cpp covers the
// recipes and the tensors themselves.)
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "convert/converter.h"
#include "core/error.h"
#include "core/gguf.h"
#include "tests/convert_test_util.h"
#include "tests/test_util.h"

using namespace moelite;
using namespace moelite::test;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// bad input

TEST_CASE("convert: bad input fails with the file and tensor named, leaving nothing behind") {
    TempDir tmp;
    const fs::path out = tmp / "out" / "model.gguf";
    fs::create_directories(out.parent_path());
    const TinyQwen2 m;
    const std::string config = tiny_qwen2_config(m);

    auto expect_failure = [&](const fs::path& dir, std::vector<std::string> must_name) {
        std::string message;
        try {
            convert_checkpoint(dir.string(), out.string(), options_for("q8_0"));
        } catch (const Error& e) {
            message = e.what();
        }
        CAPTURE(message);
        CHECK_FALSE(message.empty());
        for (const std::string& s : must_name) CHECK(message.find(s) != std::string::npos);
        CHECK(leftovers(out.parent_path(), {}).empty());
    };
    int case_no = 0;
    auto fresh = [&](const std::vector<StTensor>& tensors, const std::string& cfg) {
        const fs::path dir = tmp / ("ckpt" + std::to_string(case_no++));
        write_checkpoint(dir, cfg, tensors);
        return dir;
    };
    const std::vector<StTensor> good = tiny_qwen2_tensors(m);

    SUBCASE("the good checkpoint converts") {
        const fs::path dir = fresh(good, config);
        convert_checkpoint(dir.string(), out.string(), options_for("q8_0"));
        CHECK(fs::exists(out));
        CHECK(leftovers(out.parent_path(), {"model.gguf"}).empty());
    }
    SUBCASE("truncated shard") {
        const fs::path dir = fresh(good, config);
        const std::string bytes = read_text(dir / "model.safetensors");
        write_text(dir / "model.safetensors", bytes.substr(0, bytes.size() - 100));
        expect_failure(dir, {"model.safetensors", "lm_head.weight"});
    }
    SUBCASE("lying header length") {
        const fs::path dir = fresh(good, config);
        std::string bytes = read_text(dir / "model.safetensors");
        const uint64_t huge = bytes.size() * 2;
        std::memcpy(bytes.data(), &huge, 8);
        write_text(dir / "model.safetensors", bytes);
        expect_failure(dir, {"model.safetensors"});
    }
    SUBCASE("offsets past the end") {
        // lm_head's data range moved past the end of the file, everything else intact.
        const fs::path dir = fresh(good, config);
        const std::string bytes = read_text(dir / "model.safetensors");
        uint64_t hlen;
        std::memcpy(&hlen, bytes.data(), 8);
        auto header = nlohmann::json::parse(bytes.substr(8, hlen));
        auto& offs = header["lm_head.weight"]["data_offsets"];
        offs = {offs[0].get<uint64_t>() + 4096, offs[1].get<uint64_t>() + 4096};
        std::string h = header.dump();
        const uint64_t n = h.size();
        write_text(dir / "model.safetensors",
                   std::string(reinterpret_cast<const char*>(&n), 8) + h + bytes.substr(8 + hlen));
        expect_failure(dir, {"model.safetensors", "lm_head.weight"});
    }
    SUBCASE("unknown dtype") {
        std::vector<StTensor> t = good;
        t[3].dtype = "F7";
        expect_failure(fresh(t, config), {"model.safetensors", t[3].name, "F7"});
    }
    SUBCASE("a dtype that is not a float") {
        std::vector<StTensor> t = good;
        t[2].dtype = "I16";
        expect_failure(fresh(t, config), {"model.safetensors", t[2].name, "I16"});
    }
    SUBCASE("shape / size mismatch") {
        std::vector<StTensor> t = good;
        t[2].shape = {32, 128};  // q_proj: same bytes, wrong shape
        expect_failure(fresh(t, config), {"model.safetensors", t[2].name, "[32, 128]", "[64, 64]"});
        std::vector<StTensor> u = good;
        u[2].bytes.resize(u[2].bytes.size() - 2);  // size does not match the shape
        expect_failure(fresh(u, config), {"model.safetensors", u[2].name});
    }
    SUBCASE("missing tensor") {
        std::vector<StTensor> t = good;
        const std::string name = t[5].name;
        t.erase(t.begin() + 5);
        expect_failure(fresh(t, config), {name});
    }
    SUBCASE("a tensor that maps to nothing") {
        std::vector<StTensor> t = good;
        t.push_back({"model.layers.0.mystery.weight", "BF16", {2}, std::string(4, '\0')});
        expect_failure(fresh(t, config), {"model.layers.0.mystery.weight", "does not map"});
    }
    SUBCASE("broken config.json") {
        expect_failure(fresh(good, config.substr(0, config.size() / 2)), {"config.json", "not valid JSON"});
        std::string no_hidden = config;
        no_hidden.replace(no_hidden.find("\"hidden_size\""), 13, "\"hidden_sizX\"");
        expect_failure(fresh(good, no_hidden), {"config.json", "hidden_size"});
    }
    SUBCASE("unknown architecture") {
        std::string cfg = config;
        cfg.replace(cfg.find("Qwen2ForCausalLM"), 16, "GPTNeoXForCausalLM");
        expect_failure(fresh(good, cfg), {"config.json", "GPTNeoXForCausalLM"});
    }
    SUBCASE("FP8 weight without its scale") {
        std::vector<StTensor> t = good;
        t[2].dtype = "F8_E4M3";
        t[2].bytes.resize(t[2].bytes.size() / 2);
        expect_failure(fresh(t, config), {"model.safetensors", t[2].name, "_scale_inv"});
    }
    SUBCASE("an untied model without its output matrix") {
        std::vector<StTensor> t = good;
        t.pop_back();  // lm_head.weight
        expect_failure(fresh(t, config), {"lm_head.weight", "tie_word_embeddings is false"});
    }
    SUBCASE("a NaN or infinite weight (bf16 bits), converted or copied as it is") {
        std::vector<StTensor> t = good;
        const uint16_t nan = 0x7fc0, inf = 0x7f80;
        std::memcpy(t[2].bytes.data() + 10, &nan, 2);
        expect_failure(fresh(t, config), {"blk.0.attn_q.weight", "holds NaN or infinite values"});
        std::vector<StTensor> u = good;
        std::memcpy(u.back().bytes.data(), &inf, 2);
        for (const char* type : {"q8_0", "bf16"}) {
            std::string message;
            try {
                convert_checkpoint(fresh(u, config).string(), out.string(), options_for(type));
            } catch (const Error& e) {
                message = e.what();
            }
            CAPTURE(type);
            CHECK(message.find("'output.weight' holds NaN or infinite values") != std::string::npos);
        }
    }
    SUBCASE("settings the runtime would refuse, and more layers than tensors") {
        std::string cfg = config;
        cfg.replace(cfg.find("1e-06"), 5, "0.0");
        expect_failure(fresh(good, cfg), {"would not load", "layer_norm_rms_epsilon"});
        std::string layers = config;
        layers.replace(layers.find("\"num_hidden_layers\": 2"), 22, "\"num_hidden_layers\": 99999");
        expect_failure(fresh(good, layers), {"config.json", "num_hidden_layers 99999 is more than"});
        std::string ctx = config;
        ctx.replace(ctx.find("4096"), 4, "4294967296");
        expect_failure(fresh(good, ctx), {"config.json", "max_position_embeddings", "out of range"});
    }
    SUBCASE("rope scaling that would be dropped or guessed") {
        auto with_scaling = [&](const nlohmann::json& scaling) {
            auto c = nlohmann::json::parse(config);
            c["rope_scaling"] = scaling;
            return c.dump();
        };
        expect_failure(fresh(good, with_scaling({{"type", "linear"}})), {"config.json", "(linear) has no factor"});
        expect_failure(fresh(good, with_scaling({{"rope_type", "llama3"},
                                                 {"factor", 8.0},
                                                 {"low_freq_factor", 1.0},
                                                 {"high_freq_factor", 4.0},
                                                 {"original_max_position_embeddings", 8192}})),
                       {"config.json", "llama3 is supported on LlamaForCausalLM only"});
    }
    SUBCASE("an output that is a file of the checkpoint, or not a regular file") {
        const fs::path dir = fresh(good, config);
        const std::string shard = read_text(dir / "model.safetensors");
        for (const char* name : {"model.safetensors", "config.json"}) {
            CHECK_THROWS_WITH_AS(convert_checkpoint(dir.string(), (dir / name).string(), options_for("q8_0")),
                                 doctest::Contains("the output would overwrite"), Error);
        }
        CHECK(read_text(dir / "model.safetensors") == shard);
        // An earlier output beside the checkpoint's files is replaced.
        convert_checkpoint(dir.string(), (dir / "model.gguf").string(), options_for("q8_0"));
        convert_checkpoint(dir.string(), (dir / "model.gguf").string(), options_for("q8_0"));
        CHECK(fs::exists(dir / "model.gguf"));
        fs::create_directories(tmp / "a_directory");
        CHECK_THROWS_WITH_AS(convert_checkpoint(dir.string(), (tmp / "a_directory").string(), options_for("q8_0")),
                             doctest::Contains("exists and is not a regular file"), Error);
        CHECK(fs::is_directory(tmp / "a_directory"));
    }
    SUBCASE("not a directory, no checkpoint") {
        expect_failure(tmp / "nowhere", {"nowhere"});
        fs::create_directories(tmp / "empty");
        write_text(tmp / "empty" / "config.json", config);
        expect_failure(tmp / "empty", {"empty"});
    }
}

TEST_CASE("convert: a failed or interrupted conversion never leaves a partial file, nor touches an existing one") {
    TempDir tmp;
    const TinyQwen2 m{512, 64, 128, 3, 4, 2, false};
    write_checkpoint(tmp / "ckpt", tiny_qwen2_config(m), tiny_qwen2_tensors(m));
    const fs::path out_dir = tmp / "out";
    fs::create_directories(out_dir);
    const fs::path out = out_dir / "model.gguf";
    write_text(out, "previous contents");

    std::atomic<bool> cancel{false};
    ConvertOptions o = options_for("q8_0");
    o.chunk_bytes = 1;
    o.cancel = &cancel;
    size_t calls = 0;
    bool saw_temp = false;
    o.progress = [&](const ConvertProgress& p) {
        if (++calls == 20) {
            saw_temp = leftovers(out_dir, {"model.gguf"}).size() == 1;  // the temporary file exists mid-way
            cancel = true;
        }
    };
    CHECK_THROWS_WITH_AS(convert_checkpoint((tmp / "ckpt").string(), out.string(), o), doctest::Contains("interrupted"),
                         Error);
    CHECK(saw_temp);
    CHECK(read_text(out) == "previous contents");
    CHECK(leftovers(out_dir, {"model.gguf"}).empty());

    // A clean run replaces it.
    convert_checkpoint((tmp / "ckpt").string(), out.string(), options_for("q8_0"));
    CHECK(GgufFile::open(out.string())->tensors().size() == 1 + 1 + 1 + 3 * 12);
    CHECK(leftovers(out_dir, {"model.gguf"}).empty());
}

// ---------------------------------------------------------------------------
// tokenizer

TEST_CASE("convert tokenizer: a real vocabulary padded to the model's vocab_size, special tokens, chat template") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    // R1-Distill-Qwen's vocab_size with tiny layers: 151665 tokens padded to 151936.
    const TinyQwen2 m{151936, 32, 64, 1, 2, 1, true};
    write_checkpoint(tmp / "ckpt", tiny_qwen2_config(m), tiny_qwen2_tensors(m));
    const fs::path tokdir = fixtures_dir() / "tokenizers" / "qwen2";
    fs::copy_file(tokdir / "tokenizer.json", tmp / "ckpt" / "tokenizer.json");
    fs::copy_file(tokdir / "tokenizer_config.json", tmp / "ckpt" / "tokenizer_config.json");
    const ConvertReport r = convert_checkpoint((tmp / "ckpt").string(), (tmp / "m.gguf").string(), options_for("q8_0"));
    auto f = GgufFile::open((tmp / "m.gguf").string());
    CHECK(f->get_string("tokenizer.ggml.model") == "gpt2");
    CHECK(f->get_string("tokenizer.ggml.pre") == "qwen2");
    const auto& tokens = f->get_array<std::string>("tokenizer.ggml.tokens");
    const auto& types = f->get_array<int32_t>("tokenizer.ggml.token_type");
    REQUIRE(tokens.size() == 151936);
    REQUIRE(types.size() == 151936);
    CHECK(tokens[0] == "!");
    CHECK(types[0] == 1);
    CHECK(tokens[151643] ==
          "<\xef\xbd\x9c"
          "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>");
    CHECK(types[151643] == 3);  // special
    CHECK(types[151644] == 3);  // <｜User｜>: not flagged special, but looks special (as llama.cpp decides)
    CHECK(tokens[151648] == "<think>");
    CHECK(types[151648] == 4);  // an added, non-special token: user-defined
    CHECK(tokens[151665] == "[PAD151665]");
    CHECK(types[151935] == 5);
    CHECK(f->get_array<std::string>("tokenizer.ggml.merges").size() == 151387);
    CHECK(f->get_array<std::string>("tokenizer.ggml.merges")[0] == "\xc4\xa0 \xc4\xa0");
    CHECK(f->get_u32("tokenizer.ggml.bos_token_id") == 151646);
    CHECK(f->get_u32("tokenizer.ggml.eos_token_id") == 151643);
    CHECK(f->get_u32("tokenizer.ggml.padding_token_id") == 151643);
    CHECK(f->get_bool("tokenizer.ggml.add_bos_token") == true);
    const auto cfg = nlohmann::json::parse(read_text(tokdir / "tokenizer_config.json"));
    CHECK(f->get_string("tokenizer.chat_template") == cfg.at("chat_template").get<std::string>());
    CHECK_FALSE(f->has("qwen2.vocab_size"));  // as llama.cpp: the token list sizes the vocabulary
    bool padded_note = false;
    for (const auto& n : r.notes) padded_note = padded_note || n.find("151665 tokens padded") != std::string::npos;
    CHECK(padded_note);
}

// ---------------------------------------------------------------------------
// the binary

TEST_CASE("moelite convert / quantize: end to end through the binary") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    const std::string bin = moelite_binary().string();
    std::string output;
    const fs::path fixture = fixtures_dir() / "llama3-tiny";
    REQUIRE(run_command(bin + " convert " + fixture.string() + " -o " + (tmp / "l.gguf").string() +
                            " --type q4_k_m --attn q8_0 --override 'output\\.weight=f16' -t 2",
                        &output) == 0);
    CAPTURE(output);
    CHECK(output.find("wrote") != std::string::npos);
    CHECK(output.find("convert: 100%") != std::string::npos);  // plain progress lines: stderr is not a terminal
    {
        auto f = GgufFile::open((tmp / "l.gguf").string());
        CHECK(f->get_tensor("output.weight").type == DType::F16);
        CHECK(f->get_tensor("blk.0.attn_q.weight").type == DType::Q8_0);
        CHECK(f->get_tensor("blk.0.ffn_up.weight").type == DType::Q4_K);
        CHECK(f->get_tensor("rope_freqs.weight").type == DType::F32);
        CHECK(f->get_u32("general.file_type") == 15);
    }
    REQUIRE(run_command(bin + " quantize " + (tmp / "l.gguf").string() + " " + (tmp / "l8.gguf").string() + " q8_0 -q",
                        &output) == 0);
    CHECK(GgufFile::open((tmp / "l8.gguf").string())->get_tensor("blk.0.ffn_up.weight").type == DType::Q8_0);

    // Failures: non-zero exit, the file named, nothing written.
    CHECK(run_command(bin + " convert " + (tmp / "missing").string() + " -o " + (tmp / "x.gguf").string(), &output) !=
          0);
    CHECK(output.find("missing") != std::string::npos);
    CHECK(run_command(bin + " convert " + fixture.string() + " -o " + (tmp / "x.gguf").string() + " --type q9",
                      &output) != 0);
    CHECK(output.find("unknown type 'q9'") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp / "x.gguf"));

    // A tokenizer bigger than the model's vocabulary is refused, clearly.
    fs::create_directories(tmp / "tok");
    for (const auto& e : fs::directory_iterator(fixture)) fs::copy_file(e.path(), tmp / "tok" / e.path().filename());
    for (const char* n : {"tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(fixtures_dir() / "tokenizers" / "qwen2" / n, tmp / "tok" / n);
    CHECK(run_command(bin + " convert " + (tmp / "tok").string() + " -o " + (tmp / "x.gguf").string() + " -q",
                      &output) != 0);
    CHECK(output.find("tokenizer.json") != std::string::npos);
    CHECK(output.find("past the model's vocab_size 1024") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp / "x.gguf"));
    CHECK(leftovers(tmp.path(), {"l.gguf", "l8.gguf", "tok"}).empty());
}

TEST_CASE("convert + run: converted fixtures reproduce their expected logits in moelite's runtime") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    struct Case {
        const char* fixture;
        const char* type;
        double max_diff;  // the READMEs' tolerances: f32 ~1e-5; q8_0 0.06 in the reference, ~0.09 with llama.cpp
        int min_argmax;
    };
    const Case cases[] = {{"qwen2-tiny", "f32", 1e-4, 24},
                          {"llama3-tiny", "f32", 1e-4, 24},
                          {"deepseek-v2-lite-tiny", "f32", 1e-4, 24},
                          {"deepseek-v3-tiny", "f32", 1e-4, 24},
                          {"qwen2-tiny", "q8_0", 0.15, 24},
                          {"llama3-tiny", "q8_0", 0.15, 23}};
    for (const Case& c : cases) {
        CAPTURE(c.fixture);
        CAPTURE(c.type);
        const fs::path gguf = convert_fixture(tmp, c.fixture, c.type);
        const auto expected = nlohmann::json::parse(read_text(fixtures_dir() / c.fixture / "expected.json"));
        std::string tokens;
        for (const auto& t : expected.at("tokens")) {
            if (!tokens.empty()) tokens += ',';
            tokens += std::to_string(t.get<int>());
        }
        const fs::path out = tmp / "logits.bin";
        std::string output;
        REQUIRE(run_command(moelite_binary().string() + " logits -m " + gguf.string() + " --tokens " + tokens +
                                " --out " + out.string() + " --cache-type f32 -t 2",
                            &output) == 0);
        const std::string raw = read_text(out);
        const auto& rows = expected.at("logits");
        const size_t n_vocab = rows.at(0).size();
        REQUIRE(raw.size() == rows.size() * n_vocab * sizeof(float));
        double max_diff = 0;
        int argmax_agree = 0;
        for (size_t i = 0; i < rows.size(); ++i) {
            const float* got = reinterpret_cast<const float*>(raw.data()) + i * n_vocab;
            size_t a = 0, b = 0;
            for (size_t v = 0; v < n_vocab; ++v) {
                const double want = rows[i][v].get<double>();
                max_diff = std::max(max_diff, std::fabs(double(got[v]) - want));
                if (got[v] > got[a]) a = v;
                if (want > rows[i][b].get<double>()) b = v;
            }
            argmax_agree += a == b;
        }
        MESSAGE(std::string(c.fixture) << " " << std::string(c.type) << ": max abs diff " << max_diff << ", argmax "
                                       << argmax_agree << "/" << rows.size());
        CHECK(max_diff <= c.max_diff);
        CHECK(argmax_agree >= c.min_argmax);
    }
}
