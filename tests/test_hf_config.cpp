// convert/hf_config: config.json of each supported family -> HParams.
#include <doctest/doctest.h>

#include "convert/hf_config.h"
#include "core/error.h"
#include "tests/test_util.h"

using namespace moelite;

TEST_CASE("hf_config: fixture configs") {
    MOELITE_REQUIRE_FIXTURES();
    const auto dir = test::fixtures_dir();

    HfConfig q = hf_config_load((dir / "qwen2-tiny" / "config.json").string());
    CHECK(q.hp.arch == Arch::Qwen2);
    CHECK(q.hp.n_embd == 256);
    CHECK(q.hp.n_head_kv == 2);
    CHECK(q.hp.head_dim_k == 32);
    CHECK(q.hp.rms_eps == doctest::Approx(1e-6));
    CHECK(q.hp.rope_scaling == RopeScaling::None);

    HfConfig l = hf_config_load((dir / "llama3-tiny" / "config.json").string());
    CHECK(l.hp.arch == Arch::Llama);
    REQUIRE(l.llama3_rope.has_value());
    CHECK(l.llama3_rope->factor == 8.0f);
    CHECK(l.llama3_rope->original_context == 8192);
    CHECK(l.hp.rope_freq_base == 500000.0f);

    HfConfig v3 = hf_config_load((dir / "deepseek-v3-tiny" / "config.json").string());
    CHECK(v3.hp.arch == Arch::Deepseek2);
    CHECK(v3.hp.q_lora_rank == 96);
    CHECK(v3.hp.head_dim_k_mla == 48);
    CHECK(v3.hp.head_dim_k == 64 + 16);
    CHECK(v3.hp.expert_gating == ExpertGating::Sigmoid);
    CHECK(v3.hp.expert_weights_norm);
    CHECK(v3.hp.expert_weights_scale == 2.5f);
    CHECK(v3.hp.n_expert_groups == 4);
    CHECK(v3.hp.n_expert_groups_used == 2);
    CHECK(v3.n_layer_all == 4);
    CHECK(v3.fp8_block_rows == 128);
    CHECK(v3.hp.rope_scaling == RopeScaling::Yarn);
    CHECK(v3.hp.rope_orig_ctx == 4096);

    HfConfig v2 = hf_config_load((dir / "deepseek-v2-lite-tiny" / "config.json").string());
    CHECK(v2.hp.q_lora_rank == 0);
    CHECK(v2.hp.expert_gating == ExpertGating::Softmax);
    CHECK_FALSE(v2.hp.expert_weights_norm);
    CHECK(v2.hp.n_expert_shared == 2);
    CHECK(v2.n_layer_all == 3);
    CHECK(v2.fp8_block_rows == 0);
}

TEST_CASE("hf_config: bad configs get one clear error naming the file and key") {
    auto error_of = [](const std::string& text) {
        try {
            hf_config_parse(text, "cfg.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error_of("{").find("cfg.json: not valid JSON") != std::string::npos);
    CHECK(error_of("[]").find("expected a JSON object") != std::string::npos);
    CHECK(error_of(R"({"architectures":["GPT2LMHeadModel"]})").find("unsupported architecture 'GPT2LMHeadModel'") !=
          std::string::npos);
    const std::string base = R"({"architectures":["LlamaForCausalLM"],"vocab_size":32,"hidden_size":64,
        "intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4)";
    CHECK(error_of(base + "}") == "no error");
    CHECK(error_of(base + R"(,"num_key_value_heads":3})").find("not a multiple") != std::string::npos);
    CHECK(error_of(base + R"(,"hidden_size":-5})").find("'hidden_size'") != std::string::npos);
    CHECK(error_of(base + R"(,"rope_scaling":{"rope_type":"su"}})").find("unsupported rope scaling type 'su'") !=
          std::string::npos);
    CHECK(error_of(R"({"architectures":["LlamaForCausalLM"],"hidden_size":"x"})").find("'vocab_size'") !=
          std::string::npos);
    // Counts past the loader's bounds, and settings that would be dropped.
    CHECK(error_of(base + R"(,"max_position_embeddings":4294967296})").find("'max_position_embeddings'") !=
          std::string::npos);
    CHECK(error_of(base + R"(,"vocab_size":16777217})").find("'vocab_size' = 16777217 is out of range") !=
          std::string::npos);
    CHECK(error_of(base + R"(,"rope_scaling":{"type":"linear"}})").find("has no factor") != std::string::npos);
    const std::string v3 = R"({"architectures":["DeepseekV3ForCausalLM"],"vocab_size":32,"hidden_size":64,
        "intermediate_size":128,"moe_intermediate_size":32,"num_hidden_layers":2,"num_attention_heads":4,
        "n_routed_experts":8,"num_experts_per_tok":2,"kv_lora_rank":16,"qk_rope_head_dim":8,
        "qk_nope_head_dim":8,"v_head_dim":8,"scoring_func":"sigmoid")";
    CHECK(error_of(v3 + R"(,"topk_method":"noaux_tc"})") == "no error");
    CHECK(error_of(v3 + R"(,"topk_method":"mystery"})").find("unsupported topk_method 'mystery'") != std::string::npos);
}
