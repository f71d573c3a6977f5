// convert/tensor_map: every fixture checkpoint maps completely to llama.cpp's tensor names.
#include <doctest/doctest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "convert/tensor_map.h"
#include "core/error.h"
#include "tests/test_util.h"

using namespace moelite;

namespace {

std::vector<std::string> index_names(const std::filesystem::path& dir) {
    std::ifstream in(dir / "model.safetensors.index.json");
    REQUIRE(in.good());
    auto j = nlohmann::json::parse(in);
    std::vector<std::string> names;
    for (auto& [k, v] : j["weight_map"].items()) names.push_back(k);
    return names;
}

std::map<std::string, const ConvertItem*> by_name(const ConvertPlan& plan) {
    std::map<std::string, const ConvertItem*> m;
    for (auto& it : plan.items) m[it.spec.name] = &it;
    return m;
}

}  // namespace

TEST_CASE("tensor map: deepseek-v3-tiny (FP8, MTP layer, sigmoid router bias)") {
    MOELITE_REQUIRE_FIXTURES();
    auto dir = test::fixtures_dir() / "deepseek-v3-tiny";
    HfConfig cfg = hf_config_load((dir / "config.json").string());
    ConvertPlan plan = plan_conversion(cfg, index_names(dir), dir.string());
    auto m = by_name(plan);
    CHECK(m.count("blk.0.ffn_gate.weight") == 1);
    CHECK(m.count("blk.1.ffn_gate_exps.weight") == 1);
    CHECK(m.at("blk.1.ffn_gate_exps.weight")->sources.size() == 16);
    CHECK(m.at("blk.1.ffn_gate_exps.weight")->spec.shape == std::vector<int64_t>{256, 128, 16});
    CHECK(m.at("blk.2.exp_probs_b.bias")->sources.at(0) == "model.layers.2.mlp.gate.e_score_correction_bias");
    CHECK(m.at("blk.0.attn_k_b.weight")->transform == TensorTransform::SplitKvBK);
    CHECK(m.at("blk.0.attn_k_b.weight")->spec.shape == std::vector<int64_t>{32, 64, 8});
    CHECK(m.count("blk.3.attn_norm.weight") == 0);
    CHECK(m.count("blk.0.attn_kv_b.weight") == 0);
    CHECK_FALSE(plan.skipped.empty());
    for (auto& s : plan.skipped) CHECK(s.find("model.layers.3.") == 0);
}

TEST_CASE("tensor map: deepseek-v2-lite-tiny (plain q, no router bias)") {
    MOELITE_REQUIRE_FIXTURES();
    auto dir = test::fixtures_dir() / "deepseek-v2-lite-tiny";
    HfConfig cfg = hf_config_load((dir / "config.json").string());
    ConvertPlan plan = plan_conversion(cfg, index_names(dir), dir.string());
    auto m = by_name(plan);
    CHECK(m.count("blk.0.attn_q.weight") == 1);
    CHECK(m.at("blk.0.attn_q.weight")->transform == TensorTransform::None);
    CHECK(m.count("blk.0.attn_q_a.weight") == 0);
    CHECK(m.count("blk.1.exp_probs_b.bias") == 0);
    CHECK(m.at("blk.1.ffn_up_shexp.weight")->spec.shape == std::vector<int64_t>{256, 64});
    CHECK(plan.skipped.empty());
}

TEST_CASE("tensor map: llama3-tiny permutes q/k and adds rope_freqs") {
    MOELITE_REQUIRE_FIXTURES();
    auto dir = test::fixtures_dir() / "llama3-tiny";
    HfConfig cfg = hf_config_load((dir / "config.json").string());
    ConvertPlan plan = plan_conversion(cfg, index_names(dir), dir.string());
    auto m = by_name(plan);
    CHECK(m.at("blk.0.attn_q.weight")->transform == TensorTransform::PermuteRopeRows);
    CHECK(m.at("blk.0.attn_q.weight")->heads == 8);
    CHECK(m.at("blk.0.attn_k.weight")->heads == 4);
    CHECK(m.at("blk.0.attn_v.weight")->transform == TensorTransform::None);
    CHECK(m.at("rope_freqs.weight")->transform == TensorTransform::Llama3RopeFreqs);
    CHECK(m.at("rope_freqs.weight")->spec.shape == std::vector<int64_t>{16});
    CHECK(plan.items.size() == 4 + 3 * 9);
}

TEST_CASE("tensor map: unknown and missing tensors are named") {
    HfConfig cfg = hf_config_parse(R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":32,"hidden_size":64,
        "intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2})",
                                   "config.json");
    std::vector<std::string> names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
    for (const char* n : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                          "self_attn.v_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias",
                          "self_attn.v_proj.bias", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
        names.push_back(std::string("model.layers.0.") + n);
    CHECK(plan_conversion(cfg, names, "ckpt").items.size() == 15);

    auto extra = names;
    extra.push_back("model.layers.0.self_attn.rotary_emb.inv_freq");
    CHECK_NOTHROW(plan_conversion(cfg, extra, "ckpt"));
    extra.push_back("model.layers.0.mlp.mystery.weight");
    CHECK_THROWS_WITH_AS(plan_conversion(cfg, extra, "ckpt"),
                         doctest::Contains("'model.layers.0.mlp.mystery.weight' does not map"), Error);
    auto missing = names;
    missing.erase(missing.begin() + 4);  // q_proj.weight
    CHECK_THROWS_WITH_AS(plan_conversion(cfg, missing, "ckpt"),
                         doctest::Contains("'model.layers.0.self_attn.q_proj.weight' is missing"), Error);
}
