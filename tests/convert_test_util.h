// Test helpers for the converter: writing safetensors files and small
// synthetic Hugging Face checkpoints (config.json + shards), decoding the
// source formats independently of the library (so that tests compare the
// converter with arithmetic it did not do itself), and converting fixtures.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "convert/converter.h"
#include "tests/test_util.h"

namespace moelite::test {

struct StTensor {
    std::string name;
    std::string dtype;  // "BF16", "F32", "F8_E4M3", ...
    std::vector<int64_t> shape;
    std::string bytes;  // raw little-endian data
};

// The bytes of a safetensors file holding `tensors` in order.
inline std::string safetensors_bytes(const std::vector<StTensor>& tensors) {
    nlohmann::json header = nlohmann::json::object();
    uint64_t offset = 0;
    for (const StTensor& t : tensors) {
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
        offset += t.bytes.size();
    }
    std::string h = header.dump();
    while ((8 + h.size()) % 8 != 0) h += ' ';
    std::string out(8, '\0');
    const uint64_t n = h.size();
    std::memcpy(out.data(), &n, 8);
    out += h;
    for (const StTensor& t : tensors) out += t.bytes;
    return out;
}

inline void write_text(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// bf16 by truncation after rounding to nearest even (as torch does).
inline uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return uint16_t(u >> 16);
}
inline float from_bf16(uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline std::string bf16_bytes(const std::vector<float>& v) {
    std::string s(v.size() * 2, '\0');
    for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = to_bf16(v[i]);
        std::memcpy(&s[2 * i], &h, 2);
    }
    return s;
}
inline std::string f32_bytes(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// FP8 E4M3 "fn": sign, 4 exponent bits (bias 7), 3 mantissa bits; 0x7f / 0xff
// are NaN, there are no infinities.
inline float from_e4m3(uint8_t b) {
    const int sign = b >> 7, exp = (b >> 3) & 0xf, mant = b & 7;
    if (exp == 0xf && mant == 7) return std::numeric_limits<float>::quiet_NaN();
    const float v = exp == 0 ? std::ldexp(float(mant) / 8.0f, -6) : std::ldexp(1.0f + float(mant) / 8.0f, exp - 7);
    return sign ? -v : v;
}

// A Qwen2-architecture checkpoint of random BF16 weights (config.json +
// model.safetensors) with the given sizes; tie_word_embeddings leaves out
// lm_head. `extra` tensors are appended, `skip` names are left out.
struct TinyQwen2 {
    int64_t vocab = 256, hidden = 64, ff = 128, layers = 2, heads = 4, kv_heads = 2;
    bool tied = false;
};

inline std::vector<StTensor> tiny_qwen2_tensors(const TinyQwen2& m, uint32_t seed = 7) {
    uint32_t state = seed * 2654435761u + 1;
    auto randv = [&](size_t n, float scale) {
        std::vector<float> v(n);
        for (float& x : v) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            x = (float(state % 20001) / 10000.0f - 1.0f) * scale;
        }
        return v;
    };
    const int64_t hd = m.hidden / m.heads;
    std::vector<StTensor> t;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale) {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        t.push_back({name, "BF16", shape, bf16_bytes(randv(n, scale))});
    };
    add("model.embed_tokens.weight", {m.vocab, m.hidden}, 1.0f);
    for (int64_t l = 0; l < m.layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        add(p + "input_layernorm.weight", {m.hidden}, 1.0f);
        add(p + "self_attn.q_proj.weight", {m.heads * hd, m.hidden}, 0.1f);
        add(p + "self_attn.q_proj.bias", {m.heads * hd}, 0.1f);
        add(p + "self_attn.k_proj.weight", {m.kv_heads * hd, m.hidden}, 0.1f);
        add(p + "self_attn.k_proj.bias", {m.kv_heads * hd}, 0.1f);
        add(p + "self_attn.v_proj.weight", {m.kv_heads * hd, m.hidden}, 0.1f);
        add(p + "self_attn.v_proj.bias", {m.kv_heads * hd}, 0.1f);
        add(p + "self_attn.o_proj.weight", {m.hidden, m.heads * hd}, 0.1f);
        add(p + "post_attention_layernorm.weight", {m.hidden}, 1.0f);
        add(p + "mlp.gate_proj.weight", {m.ff, m.hidden}, 0.1f);
        add(p + "mlp.up_proj.weight", {m.ff, m.hidden}, 0.1f);
        add(p + "mlp.down_proj.weight", {m.hidden, m.ff}, 0.1f);
    }
    add("model.norm.weight", {m.hidden}, 1.0f);
    if (!m.tied) add("lm_head.weight", {m.vocab, m.hidden}, 0.1f);
    return t;
}

inline std::string tiny_qwen2_config(const TinyQwen2& m) {
    nlohmann::json c = {
        {"architectures", {"Qwen2ForCausalLM"}},
        {"model_type", "qwen2"},
        {"hidden_size", m.hidden},
        {"intermediate_size", m.ff},
        {"num_hidden_layers", m.layers},
        {"num_attention_heads", m.heads},
        {"num_key_value_heads", m.kv_heads},
        {"vocab_size", m.vocab},
        {"max_position_embeddings", 4096},
        {"rms_norm_eps", 1e-6},
        {"rope_theta", 10000.0},
        {"tie_word_embeddings", m.tied},
        {"torch_dtype", "bfloat16"},
    };
    return c.dump(2);
}

// Writes config.json and model.safetensors of `tensors` into dir.
inline void write_checkpoint(const std::filesystem::path& dir, const std::string& config,
                             const std::vector<StTensor>& tensors) {
    std::filesystem::create_directories(dir);
    write_text(dir / "config.json", config);
    write_text(dir / "model.safetensors", safetensors_bytes(tensors));
}

// Options of recipe `type` with two threads.
inline ConvertOptions options_for(const std::string& type) {
    ConvertOptions o;
    o.recipe = recipe_from_name(type);
    o.n_threads = 2;
    return o;
}

// Converts ../shared/fixtures/<fixture> into tmp as "<fixture>-<type>.gguf".
inline std::filesystem::path convert_fixture(const TempDir& tmp, const std::string& fixture, const std::string& type) {
    const std::filesystem::path out = tmp / (fixture + "-" + type + ".gguf");
    convert_checkpoint((fixtures_dir() / fixture).string(), out.string(), options_for(type));
    return out;
}

// The files in `dir` other than the names given.
inline std::vector<std::string> leftovers(const std::filesystem::path& dir, const std::set<std::string>& allowed) {
    std::vector<std::string> extra;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (!allowed.count(e.path().filename().string())) extra.push_back(e.path().filename().string());
    return extra;
}

}  // namespace moelite::test
