// The generator behind `make bench-convert` (bench/bench-convert.sh): writes a
// synthetic Hugging Face checkpoint of real shape and several GB, streamed
// tensor by tensor so that it needs little memory itself. It is a doctest
// case marked skip, so the suite never runs it; the script runs it with
// --no-skip and these environment variables:
//   MOELITE_BENCH_DIR     the directory to create (required)
//   MOELITE_BENCH_PRESET  qwen2-1.5b (default): DeepSeek-R1-Distill-Qwen-1.5B's
//                         shape in BF16, 3.5 GB in 2 shards;
//                         deepseek-fp8: a DeepSeek-V2-Lite-sized MoE (64
//                         experts, MLA) with DeepSeek-V3's FP8 weights and
//                         128 x 128 block scales, 3.6 GB in 4 shards.
// Values are pseudo-random with the magnitudes of real weights; what is
// measured is the converter's streaming, not the model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Spec {
    std::string name;
    std::string dtype;  // BF16, F32, F8_E4M3
    std::vector<int64_t> shape;
    size_t bytes() const {
        size_t n = dtype == "F32" ? 4 : dtype == "BF16" ? 2 : 1;
        for (int64_t d : shape) n *= size_t(d);
        return n;
    }
};

class Rng {
  public:
    explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() {
        s_ ^= s_ << 13;
        s_ ^= s_ >> 7;
        s_ ^= s_ << 17;
        return s_;
    }

  private:
    uint64_t s_;
};

// Fills `out` with plausible values of the tensor's dtype.
void fill(const Spec& t, Rng& rng, char* out, size_t n) {
    if (t.dtype == "F32") {
        // Norm weights / router bias / FP8 scales: around 1e-3..1.
        for (size_t i = 0; i + 4 <= n; i += 4) {
            const float v = t.name.find("scale_inv") != std::string::npos
                                ? 1e-4f * float(1 + rng.next() % 100)
                                : 1.0f + 0.01f * float(int(rng.next() % 200) - 100);
            std::memcpy(out + i, &v, 4);
        }
        return;
    }
    if (t.dtype == "BF16") {
        // Sign, exponent 2^-8 .. 2^-4, random mantissa: like trained projections.
        for (size_t i = 0; i + 8 <= n; i += 8) {
            const uint64_t r = rng.next();
            for (int k = 0; k < 4; ++k) {
                const uint16_t bits = uint16_t(r >> (16 * k));
                const uint16_t h = uint16_t((bits & 0x8000) | ((0x77 + (bits >> 12) % 5) << 7) | (bits & 0x7f));
                std::memcpy(out + i + 2 * size_t(k), &h, 2);
            }
        }
        return;
    }
    // F8_E4M3: any byte but the two NaNs.
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t r = rng.next();
        for (int k = 0; k < 8; ++k, r >>= 8) {
            uint8_t b = uint8_t(r);
            if ((b & 0x7f) == 0x7f) b = uint8_t(b & 0xf0);
            out[i + size_t(k)] = char(b);
        }
    }
}

std::vector<Spec> qwen2_specs(json& config) {
    const int64_t vocab = 151936, hidden = 1536, ff = 8960, layers = 28, heads = 12, kv = 2, hd = 128;
    config = {{"architectures", {"Qwen2ForCausalLM"}},
              {"model_type", "qwen2"},
              {"hidden_size", hidden},
              {"intermediate_size", ff},
              {"num_hidden_layers", layers},
              {"num_attention_heads", heads},
              {"num_key_value_heads", kv},
              {"vocab_size", vocab},
              {"max_position_embeddings", 131072},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 10000.0},
              {"tie_word_embeddings", false},
              {"torch_dtype", "bfloat16"},
              {"bos_token_id", 151646},
              {"eos_token_id", 151643}};
    std::vector<Spec> s;
    s.push_back({"model.embed_tokens.weight", "BF16", {vocab, hidden}});
    for (int64_t l = 0; l < layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        s.push_back({p + "input_layernorm.weight", "BF16", {hidden}});
        s.push_back({p + "self_attn.q_proj.weight", "BF16", {heads * hd, hidden}});
        s.push_back({p + "self_attn.q_proj.bias", "BF16", {heads * hd}});
        s.push_back({p + "self_attn.k_proj.weight", "BF16", {kv * hd, hidden}});
        s.push_back({p + "self_attn.k_proj.bias", "BF16", {kv * hd}});
        s.push_back({p + "self_attn.v_proj.weight", "BF16", {kv * hd, hidden}});
        s.push_back({p + "self_attn.v_proj.bias", "BF16", {kv * hd}});
        s.push_back({p + "self_attn.o_proj.weight", "BF16", {hidden, heads * hd}});
        s.push_back({p + "post_attention_layernorm.weight", "BF16", {hidden}});
        s.push_back({p + "mlp.gate_proj.weight", "BF16", {ff, hidden}});
        s.push_back({p + "mlp.up_proj.weight", "BF16", {ff, hidden}});
        s.push_back({p + "mlp.down_proj.weight", "BF16", {hidden, ff}});
    }
    s.push_back({"model.norm.weight", "BF16", {hidden}});
    s.push_back({"lm_head.weight", "BF16", {vocab, hidden}});
    return s;
}

std::vector<Spec> deepseek_fp8_specs(json& config) {
    const int64_t vocab = 102400, hidden = 2048, ff = 10944, layers = 6, heads = 16, q_lora = 1536, kv_lora = 512,
                  nope = 128, rope = 64, v = 128, experts = 64, moe_ff = 1408, shared = 2;
    config = {{"architectures", {"DeepseekV3ForCausalLM"}},
              {"model_type", "deepseek_v3"},
              {"hidden_size", hidden},
              {"intermediate_size", ff},
              {"num_hidden_layers", layers},
              {"num_attention_heads", heads},
              {"num_key_value_heads", heads},
              {"vocab_size", vocab},
              {"max_position_embeddings", 163840},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 10000},
              {"q_lora_rank", q_lora},
              {"kv_lora_rank", kv_lora},
              {"qk_nope_head_dim", nope},
              {"qk_rope_head_dim", rope},
              {"v_head_dim", v},
              {"n_routed_experts", experts},
              {"num_experts_per_tok", 6},
              {"n_shared_experts", shared},
              {"moe_intermediate_size", moe_ff},
              {"first_k_dense_replace", 1},
              {"moe_layer_freq", 1},
              {"n_group", 8},
              {"topk_group", 4},
              {"scoring_func", "sigmoid"},
              {"norm_topk_prob", true},
              {"routed_scaling_factor", 2.5},
              {"num_nextn_predict_layers", 0},
              {"tie_word_embeddings", false},
              {"rope_scaling",
               {{"type", "yarn"},
                {"factor", 40},
                {"original_max_position_embeddings", 4096},
                {"beta_fast", 32},
                {"beta_slow", 1},
                {"mscale", 1.0},
                {"mscale_all_dim", 1.0}}},
              {"quantization_config", {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}}}};
    std::vector<Spec> s;
    auto fp8 = [&](const std::string& name, int64_t rows, int64_t cols) {
        s.push_back({name, "F8_E4M3", {rows, cols}});
        s.push_back({name + "_scale_inv", "F32", {(rows + 127) / 128, (cols + 127) / 128}});
    };
    s.push_back({"model.embed_tokens.weight", "BF16", {vocab, hidden}});
    for (int64_t l = 0; l < layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        s.push_back({p + "input_layernorm.weight", "BF16", {hidden}});
        fp8(p + "self_attn.q_a_proj.weight", q_lora, hidden);
        s.push_back({p + "self_attn.q_a_layernorm.weight", "BF16", {q_lora}});
        fp8(p + "self_attn.q_b_proj.weight", heads * (nope + rope), q_lora);
        fp8(p + "self_attn.kv_a_proj_with_mqa.weight", kv_lora + rope, hidden);
        s.push_back({p + "self_attn.kv_a_layernorm.weight", "BF16", {kv_lora}});
        fp8(p + "self_attn.kv_b_proj.weight", heads * (nope + v), kv_lora);
        fp8(p + "self_attn.o_proj.weight", hidden, heads * v);
        s.push_back({p + "post_attention_layernorm.weight", "BF16", {hidden}});
        if (l == 0) {
            fp8(p + "mlp.gate_proj.weight", ff, hidden);
            fp8(p + "mlp.up_proj.weight", ff, hidden);
            fp8(p + "mlp.down_proj.weight", hidden, ff);
            continue;
        }
        s.push_back({p + "mlp.gate.weight", "BF16", {experts, hidden}});
        s.push_back({p + "mlp.gate.e_score_correction_bias", "F32", {experts}});
        for (int64_t e = 0; e < experts; ++e) {
            const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
            fp8(x + "gate_proj.weight", moe_ff, hidden);
            fp8(x + "up_proj.weight", moe_ff, hidden);
            fp8(x + "down_proj.weight", hidden, moe_ff);
        }
        fp8(p + "mlp.shared_experts.gate_proj.weight", moe_ff * shared, hidden);
        fp8(p + "mlp.shared_experts.up_proj.weight", moe_ff * shared, hidden);
        fp8(p + "mlp.shared_experts.down_proj.weight", hidden, moe_ff * shared);
    }
    s.push_back({"model.norm.weight", "BF16", {hidden}});
    s.push_back({"lm_head.weight", "BF16", {vocab, hidden}});
    return s;
}

// Writes one shard: header, then each tensor's data generated in pieces.
void write_shard(const fs::path& path, const std::vector<Spec>& specs, Rng& rng) {
    json header = json::object();
    uint64_t offset = 0;
    for (const Spec& t : specs) {
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes()}}};
        offset += t.bytes();
    }
    std::string h = header.dump();
    while (h.size() % 8) h += ' ';
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    REQUIRE(out.good());
    const uint64_t n = h.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(h.data(), std::streamsize(h.size()));
    std::vector<char> buf(size_t(8) << 20);
    for (const Spec& t : specs) {
        for (size_t done = 0; done < t.bytes();) {
            const size_t k = std::min(buf.size(), t.bytes() - done);
            fill(t, rng, buf.data(), (k + 7) / 8 * 8 <= buf.size() ? (k + 7) / 8 * 8 : k);
            out.write(buf.data(), std::streamsize(k));
            done += k;
        }
    }
    REQUIRE(out.good());
}

}  // namespace

TEST_CASE("bench: generate a synthetic checkpoint (run by bench/bench-convert.sh)" * doctest::skip()) {
    const char* dir_env = std::getenv("MOELITE_BENCH_DIR");
    REQUIRE_MESSAGE(dir_env, "set MOELITE_BENCH_DIR");
    const char* preset_env = std::getenv("MOELITE_BENCH_PRESET");
    const std::string preset = preset_env ? preset_env : "qwen2-1.5b";
    json config;
    std::vector<Spec> specs;
    size_t n_shards = 2;
    if (preset == "qwen2-1.5b") {
        specs = qwen2_specs(config);
    } else if (preset == "deepseek-fp8") {
        specs = deepseek_fp8_specs(config);
        n_shards = 4;
    } else {
        FAIL("unknown MOELITE_BENCH_PRESET " << preset);
    }
    const fs::path dir(dir_env);
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << config.dump(2);

    size_t total = 0;
    for (const Spec& t : specs) total += t.bytes();
    // Cut into shards by size; a tensor and its scale may land in different shards, as in the real releases.
    json weight_map = json::object();
    std::vector<std::vector<Spec>> shards(n_shards);
    size_t acc = 0;
    for (const Spec& t : specs) {
        const size_t i = std::min(n_shards - 1, acc * n_shards / total);
        shards[i].push_back(t);
        acc += t.bytes();
    }
    Rng rng(42);
    for (size_t i = 0; i < n_shards; ++i) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, n_shards);
        write_shard(dir / name, shards[i], rng);
        for (const Spec& t : shards[i]) weight_map[t.name] = name;
    }
    std::ofstream(dir / "model.safetensors.index.json")
        << json({{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}).dump(1);
    MESSAGE("wrote " << preset << " checkpoint of " << total / 1e9 << " GB to " << dir.string());
}
