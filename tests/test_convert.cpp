// convert/: Hugging Face checkpoints and GGUF files to quantized GGUF.
//
// What these tests prove:
//  - every fixture converts at f32 to exactly the tensors (names, shapes) and
//    metadata its README lists (llama.cpp's conventions), and each tensor
//    equals the source after the documented transform, checked with our own
//    decoding of BF16 / FP8 (permuted q/k rows, stacked experts, the kv_b
//    split, FP8 block scales with partial edge blocks, rope_freqs);
//  - q8_0 / q4_k_m pick llama-quantize's type for every tensor (rules,
//    fallbacks) and dequantize close to the f32 file;
//  - chunking and threading do not change a single byte, and `quantize` of
//    the f32 file gives what `convert` gives.
// (test_convert_io.cpp: bad input, interruption, tokenizer, the binaries, and
// the converted fixtures' logits.)
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "convert/converter.h"
#include "convert/quant_recipe.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/safetensors.h"
#include "quant/quant.h"
#include "tests/convert_test_util.h"
#include "tests/test_util.h"

using namespace moelite;
using namespace moelite::test;
namespace fs = std::filesystem;

namespace {

std::vector<float> tensor_floats(const GgufFile& f, const std::string& name) {
    const GgufTensorInfo& t = f.get_tensor(name);
    const QuantTraits* q = quant_traits(t.type);
    REQUIRE(q);
    std::vector<float> out(size_t(t.nelements()));
    q->to_float(t.data, out.data(), t.nelements());
    return out;
}

std::vector<int64_t> shape_of(const GgufTensorInfo& t) {
    return std::vector<int64_t>(t.ne, t.ne + t.n_dims);
}

// "name [d0, d1]" lines of a fixture README's tensor table.
std::map<std::string, std::vector<int64_t>> readme_tensors(const std::string& fixture) {
    std::ifstream in(fixtures_dir() / fixture / "README.md");
    std::map<std::string, std::vector<int64_t>> out;
    const std::regex line(R"(^((?:blk\.\d+\.)?[a-z_]+\.(?:weight|bias))\s+\[([0-9, ]+)\])");
    std::string s;
    while (std::getline(in, s)) {
        std::smatch m;
        if (!std::regex_search(s, m, line)) continue;
        std::vector<int64_t> dims;
        std::string d = m[2];
        for (size_t p = 0; p < d.size();) {
            size_t q = d.find(',', p);
            dims.push_back(std::stoll(d.substr(p, q - p)));
            p = q == std::string::npos ? d.size() : q + 1;
        }
        out[m[1]] = dims;
    }
    return out;
}

std::set<std::string> metadata_keys(const GgufFile& f) {
    std::set<std::string> k;
    for (const auto& kv : f.metadata()) k.insert(kv.key);
    return k;
}

// Rows of a Hugging Face tensor decoded by the test itself (BF16 / F32 / FP8 x scale).
struct HfRef {
    SafetensorsCheckpoint ckpt;
    explicit HfRef(const std::string& fixture) : ckpt((fixtures_dir() / fixture).string()) {}
    float at(const std::string& name, int64_t r, int64_t c) const {
        const SafetensorsTensor& t = ckpt.get(name);
        const int64_t cols = t.shape.size() == 1 ? t.shape[0] : t.shape[1];
        const int64_t i = r * cols + c;
        if (t.dtype == SafetensorsDType::BF16) {
            uint16_t h;
            std::memcpy(&h, t.data + 2 * i, 2);
            return from_bf16(h);
        }
        if (t.dtype == SafetensorsDType::F32) {
            float f;
            std::memcpy(&f, t.data + 4 * i, 4);
            return f;
        }
        REQUIRE(t.dtype == SafetensorsDType::F8_E4M3);
        const SafetensorsTensor& s = ckpt.get(name + "_scale_inv");
        REQUIRE(s.dtype == SafetensorsDType::F32);
        float scale;
        std::memcpy(&scale, s.data + 4 * ((r / 128) * s.shape[1] + c / 128), 4);
        return from_e4m3(t.data[i]) * scale;
    }
};

// Relative RMS difference of two tensors.
double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += double(a[i] - b[i]) * double(a[i] - b[i]);
        den += double(b[i]) * double(b[i]);
    }
    return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace

// ---------------------------------------------------------------------------
// recipes (no fixtures needed)

TEST_CASE("convert recipe: use_more_bits picks llama.cpp's layers") {
    // 28 layers (R1-Distill-Qwen-1.5B): n/8 = 3, 7n/8 = 24.
    std::vector<int64_t> more;
    for (int64_t l = 0; l < 28; ++l)
        if (recipe_use_more_bits(l, 28)) more.push_back(l);
    CHECK(more == std::vector<int64_t>{0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27});
}

TEST_CASE("convert recipe: mixture rules, class overrides, regex overrides and fallbacks") {
    RecipeModel dense{Arch::Qwen2, 28, 12, 2, false};
    QuantRecipe r = recipe_from_name("Q4_K_M");
    CHECK(r.file_type == FileType::MostlyQ4_K_M);
    auto type = [&](const QuantRecipe& rr, const RecipeModel& m, const std::string& n, std::vector<int64_t> ne) {
        return recipe_choose(rr, m, n, ne).type;
    };
    CHECK(type(r, dense, "output.weight", {1536, 151936}) == DType::Q6_K);
    CHECK(type(r, dense, "token_embd.weight", {1536, 151936}) == DType::Q4_K);
    CHECK(type(r, dense, "blk.0.attn_v.weight", {1536, 256}) == DType::Q6_K);
    CHECK(type(r, dense, "blk.3.attn_v.weight", {1536, 256}) == DType::Q4_K);
    CHECK(type(r, dense, "blk.5.ffn_down.weight", {8960, 1536}) == DType::Q6_K);
    CHECK(type(r, dense, "blk.6.ffn_down.weight", {8960, 1536}) == DType::Q4_K);
    CHECK(type(r, dense, "blk.6.attn_q.bias", {1536}) == DType::F32);
    CHECK(type(r, dense, "blk.6.attn_norm.weight", {1536}) == DType::F32);
    // Tied embeddings: token_embd takes output's treatment.
    RecipeModel tied = dense;
    tied.tied_embeddings = true;
    CHECK(type(r, tied, "token_embd.weight", {1536, 151936}) == DType::Q6_K);
    // 70B (80-layer GQA llama): attn_v q4_k -> q5_k where use_more_bits says no.
    RecipeModel b70{Arch::Llama, 80, 64, 8, false};
    CHECK(type(r, b70, "blk.11.attn_v.weight", {8192, 1024}) == DType::Q5_K);
    CHECK(type(r, b70, "blk.12.attn_v.weight", {8192, 1024}) == DType::Q6_K);
    // MoE: router f32, experts' ffn_down by layer, a 3-D expert stack quantized.
    RecipeModel moe{Arch::Deepseek2, 61, 128, 1, false};
    CHECK(type(r, moe, "blk.5.ffn_gate_inp.weight", {7168, 256}) == DType::F32);
    CHECK(type(r, moe, "blk.3.ffn_down_exps.weight", {2048, 7168, 256}) == DType::Q6_K);
    CHECK(type(r, moe, "blk.9.ffn_down_exps.weight", {2048, 7168, 256}) == DType::Q6_K);  // (9 - 7) % 3 == 2
    CHECK(type(r, moe, "blk.10.ffn_down_exps.weight", {2048, 7168, 256}) == DType::Q4_K);
    CHECK(type(r, moe, "blk.9.ffn_up_exps.weight", {7168, 2048, 256}) == DType::Q4_K);
    // attn_k_b rows of 128 do not fit q4_k's 256: q5_0, with a note.
    TypeChoice kb = recipe_choose(r, moe, "blk.9.attn_k_b.weight", {128, 512, 128});
    CHECK(kb.type == DType::Q5_0);
    CHECK(kb.note.find("blk.9.attn_k_b.weight") != std::string::npos);
    CHECK(type(r, moe, "blk.9.attn_v.weight", {100, 64}) == DType::F16);  // q6_k -> q8_0 -> f16 (100 % 32 != 0)

    // Class overrides beat the mixture; a regex override beats both.
    QuantRecipe o = recipe_from_name("q4_k_m");
    o.experts = DType::Q2_K;
    o.attn = DType::Q8_0;
    o.embed = DType::Q6_K;
    o.overrides.push_back(recipe_override("blk\\.9\\..*exps=q5_k"));
    CHECK(type(o, moe, "blk.3.ffn_down_exps.weight", {2048, 7168, 256}) == DType::Q2_K);
    CHECK(type(o, moe, "blk.9.ffn_down_exps.weight", {2048, 7168, 256}) == DType::Q5_K);
    CHECK(type(o, moe, "blk.9.attn_q_b.weight", {1536, 24576}) == DType::Q8_0);
    CHECK(type(o, moe, "token_embd.weight", {7168, 129280}) == DType::Q6_K);
    CHECK(type(o, moe, "blk.9.ffn_gate_shexp.weight", {7168, 2048}) == DType::Q4_K);

    // Plain types are pure.
    QuantRecipe q8 = recipe_from_name("q8_0");
    CHECK(type(q8, dense, "output.weight", {1536, 151936}) == DType::Q8_0);
    CHECK(type(q8, dense, "blk.0.attn_v.weight", {1536, 256}) == DType::Q8_0);
    CHECK(type(q8, dense, "blk.0.attn_v.weight", {48, 256}) == DType::F16);

    CHECK_THROWS_WITH_AS(recipe_from_name("q3_x"), doctest::Contains("unknown type 'q3_x'"), Error);
    CHECK_THROWS_WITH_AS(recipe_override("blk(=q4_k"), doctest::Contains("not a valid regular expression"), Error);
    CHECK_THROWS_WITH_AS(recipe_override("blk=q8_k"), doctest::Contains("not a type weights can be stored in"), Error);
    CHECK_THROWS_WITH_AS(recipe_override("noequals"), doctest::Contains("REGEX=TYPE"), Error);
}

// ---------------------------------------------------------------------------
// fixtures at f32: names, shapes, metadata, values

TEST_CASE("convert: qwen2-tiny and llama3-tiny at f32 hold exactly the README's tensors and metadata") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    for (const std::string fixture : {"qwen2-tiny", "llama3-tiny"}) {
        CAPTURE(fixture);
        auto f = GgufFile::open(convert_fixture(tmp, fixture, "f32").string());
        const auto want = readme_tensors(fixture);
        REQUIRE(want.size() >= 30);
        std::map<std::string, std::vector<int64_t>> got;
        for (const auto& t : f->tensors()) {
            got[t.name] = shape_of(t);
            CHECK(t.type == DType::F32);
        }
        CHECK(got == want);
        const std::string a = fixture == "qwen2-tiny" ? "qwen2" : "llama";
        CHECK(f->get_string("general.architecture") == a);
        CHECK(f->get_string("general.type") == "model");
        CHECK(f->get_u32("general.file_type") == 0);
        CHECK(f->get_u32("general.quantization_version") == 2);
        CHECK(f->get_string("tokenizer.ggml.model") == "none");
        CHECK(f->get_u32(a + ".block_count") == 3);
        CHECK(f->get_u32(a + ".context_length") == 131072);
        CHECK(f->get_u32(a + ".embedding_length") == 256);
        CHECK(f->get_u32(a + ".attention.head_count") == 8);
        CHECK(f->get_u32(a + ".vocab_size") == 1024);
        std::set<std::string> keys = {
            "general.architecture",         "general.type",        "general.name", "general.file_type",
            "general.quantization_version", "tokenizer.ggml.model"};
        for (const char* k :
             {"block_count", "context_length", "embedding_length", "feed_forward_length", "attention.head_count",
              "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon", "vocab_size"})
            keys.insert(a + "." + k);
        if (a == "qwen2") {
            CHECK(f->get_u32("qwen2.feed_forward_length") == 640);
            CHECK(f->get_u32("qwen2.attention.head_count_kv") == 2);
            CHECK(f->get_f32("qwen2.rope.freq_base") == 10000.0f);
            CHECK(f->get_f32("qwen2.attention.layer_norm_rms_epsilon") == 1e-6f);
        } else {
            keys.insert("llama.rope.dimension_count");
            CHECK(f->get_u32("llama.feed_forward_length") == 768);
            CHECK(f->get_u32("llama.attention.head_count_kv") == 4);
            CHECK(f->get_f32("llama.rope.freq_base") == 500000.0f);
            CHECK(f->get_f32("llama.attention.layer_norm_rms_epsilon") == 1e-5f);
            CHECK(f->get_u32("llama.rope.dimension_count") == 32);
        }
        CHECK(metadata_keys(*f) == keys);
    }
}

TEST_CASE("convert: deepseek fixtures at f32 hold llama.cpp's deepseek2 tensors and keys") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    {
        auto f = GgufFile::open(convert_fixture(tmp, "deepseek-v3-tiny", "f32").string());
        CHECK(f->tensors().size() == 52);
        CHECK(f->get_string("general.architecture") == "deepseek2");
        CHECK(shape_of(f->get_tensor("blk.1.ffn_gate_exps.weight")) == std::vector<int64_t>{256, 128, 16});
        CHECK(shape_of(f->get_tensor("blk.2.ffn_down_exps.weight")) == std::vector<int64_t>{128, 256, 16});
        CHECK(shape_of(f->get_tensor("blk.0.attn_k_b.weight")) == std::vector<int64_t>{32, 64, 8});
        CHECK(shape_of(f->get_tensor("blk.0.attn_v_b.weight")) == std::vector<int64_t>{64, 32, 8});
        CHECK(shape_of(f->get_tensor("blk.0.attn_q_b.weight")) == std::vector<int64_t>{96, 384});
        CHECK(shape_of(f->get_tensor("blk.0.attn_kv_a_mqa.weight")) == std::vector<int64_t>{256, 80});
        CHECK(shape_of(f->get_tensor("blk.1.exp_probs_b.bias")) == std::vector<int64_t>{16});
        CHECK(shape_of(f->get_tensor("blk.1.ffn_gate_shexp.weight")) == std::vector<int64_t>{256, 128});
        CHECK(shape_of(f->get_tensor("blk.0.ffn_gate.weight")) == std::vector<int64_t>{256, 512});
        CHECK(f->find_tensor("blk.0.ffn_gate_exps.weight") == nullptr);            // a leading dense layer
        CHECK(f->find_tensor("blk.0.attn_kv_b.weight") == nullptr);                // written split, as llama.cpp does
        for (const auto& t : f->tensors()) CHECK(t.name.rfind("blk.3.", 0) != 0);  // the MTP layer is skipped
        const std::map<std::string, uint32_t> u32 = {{"block_count", 3},
                                                     {"context_length", 163840},
                                                     {"embedding_length", 256},
                                                     {"feed_forward_length", 512},
                                                     {"attention.head_count", 8},
                                                     {"attention.head_count_kv", 1},
                                                     {"leading_dense_block_count", 1},
                                                     {"vocab_size", 1024},
                                                     {"attention.q_lora_rank", 96},
                                                     {"attention.kv_lora_rank", 64},
                                                     {"attention.key_length", 80},
                                                     {"attention.value_length", 64},
                                                     {"attention.key_length_mla", 48},
                                                     {"attention.value_length_mla", 32},
                                                     {"expert_feed_forward_length", 128},
                                                     {"expert_count", 16},
                                                     {"expert_used_count", 4},
                                                     {"expert_shared_count", 1},
                                                     {"expert_group_count", 4},
                                                     {"expert_group_used_count", 2},
                                                     {"expert_gating_func", 2},
                                                     {"rope.dimension_count", 16},
                                                     {"rope.scaling.original_context_length", 4096}};
        for (const auto& [k, v] : u32) CHECK_MESSAGE(f->get_u32("deepseek2." + k) == v, k);
        CHECK(f->get_f32("deepseek2.expert_weights_scale") == 2.5f);
        CHECK(f->get_bool("deepseek2.expert_weights_norm") == true);
        CHECK(f->get_string("deepseek2.rope.scaling.type") == "yarn");
        CHECK(f->get_f32("deepseek2.rope.scaling.factor") == 40.0f);
        CHECK(f->get_f32("deepseek2.rope.scaling.yarn_log_multiplier") == doctest::Approx(0.1f));
        CHECK(f->get_f32("deepseek2.attention.layer_norm_rms_epsilon") == 1e-6f);
    }
    {
        auto f = GgufFile::open(convert_fixture(tmp, "deepseek-v2-lite-tiny", "f32").string());
        CHECK(f->tensors().size() == 44);
        CHECK(shape_of(f->get_tensor("blk.0.attn_q.weight")) == std::vector<int64_t>{256, 384});
        CHECK(f->find_tensor("blk.0.attn_q_a.weight") == nullptr);
        CHECK(f->find_tensor("blk.1.exp_probs_b.bias") == nullptr);
        CHECK(shape_of(f->get_tensor("blk.1.ffn_up_shexp.weight")) == std::vector<int64_t>{256, 64});
        CHECK(f->get_u32("deepseek2.attention.q_lora_rank") == 0);  // plain q projection (see model_metadata.cpp)
        CHECK(f->get_u32("deepseek2.expert_gating_func") == 1);
        CHECK_FALSE(f->has("deepseek2.expert_weights_norm"));
        CHECK(f->get_f32("deepseek2.rope.scaling.yarn_log_multiplier") == doctest::Approx(0.0707f));
    }
}

TEST_CASE("convert: f32 tensors equal the source after the documented transform") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    SUBCASE("qwen2: plain copy of weights and biases, no permutation") {
        HfRef hf("qwen2-tiny");
        auto f = GgufFile::open(convert_fixture(tmp, "qwen2-tiny", "f32").string());
        auto q = tensor_floats(*f, "blk.1.attn_q.weight");  // ne {256, 256}
        for (int64_t r : {0, 1, 17, 255})
            for (int64_t c : {0, 3, 255})
                CHECK(q[size_t(r * 256 + c)] == hf.at("model.layers.1.self_attn.q_proj.weight", r, c));
        auto kb = tensor_floats(*f, "blk.2.attn_k.bias");
        for (int64_t i = 0; i < 64; ++i) CHECK(kb[size_t(i)] == hf.at("model.layers.2.self_attn.k_proj.bias", 0, i));
        auto emb = tensor_floats(*f, "token_embd.weight");
        CHECK(emb[1000 * 256 + 7] == hf.at("model.embed_tokens.weight", 1000, 7));
    }
    SUBCASE("llama3: q/k rows permuted per head; rope_freqs from the config") {
        HfRef hf("llama3-tiny");
        auto f = GgufFile::open(convert_fixture(tmp, "llama3-tiny", "f32").string());
        const int64_t d = 32, half = 16, in = 256;
        auto q = tensor_floats(*f, "blk.0.attn_q.weight");
        auto k = tensor_floats(*f, "blk.2.attn_k.weight");
        for (int64_t h : {0, 3, 7})
            for (int64_t i : {0, 5, 15})
                for (int64_t j : {0, 1})
                    for (int64_t c : {0, 100}) {
                        const int64_t new_row = h * d + 2 * i + j, old_row = h * d + j * half + i;
                        CHECK(q[size_t(new_row * in + c)] ==
                              hf.at("model.layers.0.self_attn.q_proj.weight", old_row, c));
                        if (h < 4)
                            CHECK(k[size_t(new_row * in + c)] ==
                                  hf.at("model.layers.2.self_attn.k_proj.weight", old_row, c));
                    }
        // v is not permuted.
        CHECK(tensor_floats(*f, "blk.0.attn_v.weight")[17 * 256 + 3] ==
              hf.at("model.layers.0.self_attn.v_proj.weight", 17, 3));
        const std::vector<float> want = {1, 1, 1, 1, 1, 1, 1, 1, 2.69453f, 8, 8, 8, 8, 8, 8, 8};
        auto rf = tensor_floats(*f, "rope_freqs.weight");
        REQUIRE(rf.size() == want.size());
        for (size_t i = 0; i < want.size(); ++i) CHECK(rf[i] == doctest::Approx(want[i]).epsilon(1e-5));
    }
    SUBCASE("deepseek-v2-lite: stacked experts and the kv_b split") {
        HfRef hf("deepseek-v2-lite-tiny");
        auto f = GgufFile::open(convert_fixture(tmp, "deepseek-v2-lite-tiny", "f32").string());
        // ffn_down_exps ne {32, 256, 32}: expert e, row r (of 256), column c (of 32).
        auto down = tensor_floats(*f, "blk.2.ffn_down_exps.weight");
        for (int64_t e : {0, 13, 31})
            for (int64_t r : {0, 255})
                for (int64_t c : {0, 31})
                    CHECK(down[size_t((e * 256 + r) * 32 + c)] ==
                          hf.at("model.layers.2.mlp.experts." + std::to_string(e) + ".down_proj.weight", r, c));
        // kv_b [8 * (32 + 32), 64]: k_b[h][j][i] = kv_b[h*64 + i][j], v_b[h][r][j] = kv_b[h*64 + 32 + r][j].
        auto kb = tensor_floats(*f, "blk.1.attn_k_b.weight");  // ne {32, 64, 8}
        auto vb = tensor_floats(*f, "blk.1.attn_v_b.weight");  // ne {64, 32, 8}
        const std::string kv = "model.layers.1.self_attn.kv_b_proj.weight";
        for (int64_t h : {0, 5, 7})
            for (int64_t a : {0, 9, 31})
                for (int64_t b : {0, 40, 63}) {
                    CHECK(kb[size_t((h * 64 + b) * 32 + a)] == hf.at(kv, h * 64 + a, b));
                    CHECK(vb[size_t((h * 32 + a) * 64 + b)] == hf.at(kv, h * 64 + 32 + a, b));
                }
    }
    SUBCASE("deepseek-v3: FP8 weights times their block scales, edge blocks included") {
        HfRef hf("deepseek-v3-tiny");
        auto f = GgufFile::open(convert_fixture(tmp, "deepseek-v3-tiny", "f32").string());
        // q_b [384, 96]: rows 256..383 are the partial second row block.
        auto qb = tensor_floats(*f, "blk.1.attn_q_b.weight");
        for (int64_t r : {0, 127, 128, 300, 383})
            for (int64_t c : {0, 95}) {
                const float want = hf.at("model.layers.1.self_attn.q_b_proj.weight", r, c);
                CHECK(want != 0.0f);
                CHECK(qb[size_t(r * 96 + c)] == want);
            }
        // Experts of 128 x 256 and the router bias (F32).
        auto up = tensor_floats(*f, "blk.2.ffn_up_exps.weight");  // ne {256, 128, 16}
        CHECK(up[size_t((9 * 128 + 100) * 256 + 200)] ==
              hf.at("model.layers.2.mlp.experts.9.up_proj.weight", 100, 200));
        auto bias = tensor_floats(*f, "blk.1.exp_probs_b.bias");
        CHECK(bias[5] == hf.at("model.layers.1.mlp.gate.e_score_correction_bias", 0, 5));
        // kv_a [80, 256] (one partial row block), as-is.
        auto kva = tensor_floats(*f, "blk.0.attn_kv_a_mqa.weight");
        CHECK(kva[79 * 256 + 255] == hf.at("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", 79, 255));
    }
}

// ---------------------------------------------------------------------------
// quantized types

TEST_CASE("convert: q8_0 and q4_k_m choose llama-quantize's types and stay close to the f32 file") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    for (const std::string fixture : {"qwen2-tiny", "deepseek-v3-tiny"}) {
        CAPTURE(fixture);
        auto f32 = GgufFile::open(convert_fixture(tmp, fixture, "f32").string());
        for (const std::string type : {"q8_0", "q4_k_m"}) {
            CAPTURE(type);
            auto q = GgufFile::open(convert_fixture(tmp, fixture, type).string());
            REQUIRE(q->tensors().size() == f32->tensors().size());
            CHECK(q->get_u32("general.file_type") == (type == "q8_0" ? 7u : 15u));
            for (const auto& t : q->tensors()) {
                CAPTURE(t.name);
                const auto a = tensor_floats(*q, t.name), b = tensor_floats(*f32, t.name);
                double bound = 0;
                switch (t.type) {
                    case DType::F32:
                        bound = 0;
                        break;
                    case DType::Q8_0:
                        bound = 0.01;
                        break;
                    case DType::Q6_K:
                        bound = 0.03;
                        break;
                    case DType::Q5_0:
                        bound = 0.06;
                        break;
                    case DType::Q4_K:
                        bound = 0.12;
                        break;
                    default:
                        FAIL("unexpected type " << dtype_name(t.type));
                }
                CHECK(rel_rms(a, b) <= bound);
                if (t.n_dims == 1 || t.name.find("ffn_gate_inp") != std::string::npos)
                    CHECK(t.type == DType::F32);
                else if (type == "q8_0")
                    CHECK(t.type == DType::Q8_0);
            }
        }
    }
    // The q4_k_m choices llama-quantize (commit d32676d77) makes for these files.
    auto qw = GgufFile::open((tmp / "qwen2-tiny-q4_k_m.gguf").string());
    CHECK(qw->get_tensor("output.weight").type == DType::Q6_K);
    CHECK(qw->get_tensor("token_embd.weight").type == DType::Q4_K);
    CHECK(qw->get_tensor("blk.2.attn_v.weight").type == DType::Q6_K);  // use_more_bits(2, 3)
    CHECK(qw->get_tensor("blk.1.attn_v.weight").type == DType::Q4_K);
    CHECK(qw->get_tensor("blk.2.ffn_down.weight").type == DType::Q8_0);  // rows of 640: q6_k -> q8_0
    CHECK(qw->get_tensor("blk.0.ffn_down.weight").type == DType::Q5_0);  // q4_k -> q5_0
    auto ds = GgufFile::open((tmp / "deepseek-v3-tiny-q4_k_m.gguf").string());
    CHECK(ds->get_tensor("blk.1.ffn_gate_exps.weight").type == DType::Q4_K);
    CHECK(ds->get_tensor("blk.1.ffn_down_exps.weight").type == DType::Q5_0);  // rows of 128: q4_k -> q5_0
    CHECK(ds->get_tensor("blk.2.ffn_down_exps.weight").type == DType::Q8_0);  // q6_k -> q8_0
    CHECK(ds->get_tensor("blk.0.attn_k_b.weight").type == DType::Q5_0);
    CHECK(ds->get_tensor("blk.0.attn_v_b.weight").type == DType::Q5_0);  // rows of 64
    CHECK(ds->get_tensor("blk.1.ffn_gate_inp.weight").type == DType::F32);
}

TEST_CASE("convert: chunk size and thread count do not change a byte; quantize of the f32 file matches convert") {
    MOELITE_REQUIRE_FIXTURES();
    TempDir tmp;
    const std::string dir = (fixtures_dir() / "deepseek-v3-tiny").string();
    ConvertOptions a = options_for("q4_k_m");
    a.n_threads = 1;
    ConvertOptions b = options_for("q4_k_m");
    b.n_threads = 3;
    b.chunk_bytes = 1;  // one granule per chunk: chunks end inside experts and on every kv_b head
    size_t progress_calls = 0;
    b.progress = [&](const ConvertProgress& p) {
        ++progress_calls;
        CHECK(p.bytes_read <= p.bytes_total);
        CHECK(p.tensors_done <= p.tensors_total);
    };
    ConvertOptions c = options_for("q4_k_m");
    c.n_threads = 4;  // whole tensors as chunks, split over 4 threads
    convert_checkpoint(dir, (tmp / "a.gguf").string(), a);
    const ConvertReport rb = convert_checkpoint(dir, (tmp / "b.gguf").string(), b);
    convert_checkpoint(dir, (tmp / "c.gguf").string(), c);
    CHECK(read_text(tmp / "a.gguf") == read_text(tmp / "b.gguf"));
    CHECK(read_text(tmp / "a.gguf") == read_text(tmp / "c.gguf"));
    CHECK(progress_calls > 1000);
    CHECK(rb.n_tensors == 52);
    CHECK(rb.bytes_read > 5'000'000);
    bool fallback_noted = false;
    for (const auto& n : rb.notes)
        fallback_noted = fallback_noted || n.find("blk.0.attn_k_b.weight") != std::string::npos;
    CHECK(fallback_noted);

    // moelite quantize: the f32 file re-quantized to q8_0 equals convert --type q8_0 tensor for tensor.
    convert_checkpoint(dir, (tmp / "f32.gguf").string(), options_for("f32"));
    convert_checkpoint(dir, (tmp / "c8.gguf").string(), options_for("q8_0"));
    quantize_gguf((tmp / "f32.gguf").string(), (tmp / "q8.gguf").string(), options_for("q8_0"));
    auto c8 = GgufFile::open((tmp / "c8.gguf").string());
    auto q8 = GgufFile::open((tmp / "q8.gguf").string());
    REQUIRE(c8->tensors().size() == q8->tensors().size());
    for (size_t i = 0; i < c8->tensors().size(); ++i) {
        const auto& x = c8->tensors()[i];
        const auto& y = q8->get_tensor(x.name);
        CHECK(x.type == y.type);
        CHECK((x.nbytes == y.nbytes && std::memcmp(x.data, y.data, x.nbytes) == 0));
    }
    CHECK(q8->get_u32("general.file_type") == 7);
    CHECK(q8->get_string("general.architecture") == "deepseek2");
    CHECK(q8->get_u32("deepseek2.expert_count") == 16);
    // Re-quantizing q8 -> q4_k_m keeps metadata and applies the same rules.
    quantize_gguf((tmp / "q8.gguf").string(), (tmp / "q4.gguf").string(), options_for("q4_k_m"));
    auto q4 = GgufFile::open((tmp / "q4.gguf").string());
    auto c4 = GgufFile::open((tmp / "a.gguf").string());
    for (const auto& t : c4->tensors()) CHECK(q4->get_tensor(t.name).type == t.type);
    CHECK(q4->metadata().size() == c4->metadata().size());
    CHECK_THROWS_WITH_AS(quantize_gguf((tmp / "q8.gguf").string(), (tmp / "q8.gguf").string(), options_for("q4_0")),
                         doctest::Contains("overwrite the input"), Error);
}
