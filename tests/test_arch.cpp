// models/arch: the tensor declarations produce llama.cpp's names and shapes.
#include <doctest/doctest.h>

#include <map>

#include "models/arch.h"

using namespace moelite;

namespace {

std::map<std::string, TensorSpec> by_name(const HParams& hp) {
    std::map<std::string, TensorSpec> m;
    for (auto& s : arch_tensor_specs(hp)) {
        CHECK_MESSAGE(m.count(s.name) == 0, "duplicate tensor " << s.name);
        m.emplace(s.name, s);
    }
    return m;
}

}  // namespace

TEST_CASE("arch names round-trip") {
    for (Arch a : {Arch::Llama, Arch::Qwen2, Arch::Deepseek2}) CHECK(arch_from_name(arch_name(a)) == a);
    CHECK_FALSE(arch_from_name("gpt2").has_value());
}

TEST_CASE("qwen2 tensors: R1-Distill-Qwen-1.5B shapes") {
    HParams hp;
    hp.arch = Arch::Qwen2;
    hp.n_vocab = 151936;
    hp.n_embd = 1536;
    hp.n_ff = 8960;
    hp.n_layer = 28;
    hp.n_head = 12;
    hp.n_head_kv = 2;
    hp.head_dim_k = hp.head_dim_v = 128;
    hp.n_rot = 128;
    auto m = by_name(hp);
    CHECK(m.size() == 3 + 28 * 12);
    CHECK(m.at("blk.27.attn_k.weight").shape == std::vector<int64_t>{1536, 256});
    CHECK(m.at("blk.0.attn_q.bias").need == TensorNeed::Required);
    CHECK(m.at("blk.5.ffn_down.weight").shape == std::vector<int64_t>{8960, 1536});
    CHECK(m.at("output.weight").need == TensorNeed::Optional);
}

TEST_CASE("deepseek2 tensors: V3 layout with dense lead layers, MLA split kv_b, experts") {
    HParams hp;
    hp.arch = Arch::Deepseek2;
    hp.n_vocab = 129280;
    hp.n_embd = 7168;
    hp.n_ff = 18432;
    hp.n_layer = 4;
    hp.n_head = 128;
    hp.n_head_kv = 1;
    hp.q_lora_rank = 1536;
    hp.kv_lora_rank = 512;
    hp.n_rot = 64;
    hp.head_dim_k_mla = 192;
    hp.head_dim_v_mla = 128;
    hp.n_expert = 256;
    hp.n_expert_used = 8;
    hp.n_expert_shared = 1;
    hp.n_ff_exp = 2048;
    hp.n_layer_dense_lead = 3;
    auto m = by_name(hp);
    CHECK(m.count("blk.2.ffn_gate.weight") == 1);
    CHECK(m.count("blk.3.ffn_gate.weight") == 0);
    CHECK(m.count("blk.2.ffn_gate_exps.weight") == 0);
    CHECK(m.at("blk.3.ffn_gate_exps.weight").shape == std::vector<int64_t>{7168, 2048, 256});
    CHECK(m.at("blk.3.ffn_down_exps.weight").shape == std::vector<int64_t>{2048, 7168, 256});
    CHECK(m.at("blk.3.exp_probs_b.bias").shape == std::vector<int64_t>{256});
    CHECK(m.at("blk.0.attn_q_b.weight").shape == std::vector<int64_t>{1536, 128 * 192});
    CHECK(m.at("blk.0.attn_kv_a_mqa.weight").shape == std::vector<int64_t>{7168, 576});
    CHECK(m.at("blk.0.attn_k_b.weight").shape == std::vector<int64_t>{128, 512, 128});
    CHECK(m.at("blk.0.attn_v_b.weight").shape == std::vector<int64_t>{512, 128, 128});
    CHECK(m.at("blk.0.attn_kv_b.weight").shape == std::vector<int64_t>{512, 128 * (128 + 128)});
    CHECK(m.count("blk.0.attn_q.weight") == 0);

    hp.q_lora_rank = 0;  // V2-Lite: plain q projection
    m = by_name(hp);
    CHECK(m.count("blk.0.attn_q_a.weight") == 0);
    CHECK(m.at("blk.0.attn_q.weight").shape == std::vector<int64_t>{7168, 128 * 192});
}

TEST_CASE("tensor_name substitutes the layer") {
    CHECK(tensor_name("blk.%d.attn_q.weight", 12) == "blk.12.attn_q.weight");
    CHECK(tensor_name("output.weight", -1) == "output.weight");
}
