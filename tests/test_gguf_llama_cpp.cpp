// GGUF interoperability with llama.cpp, run only when its tools are at hand:
// set MOELITE_LLAMA_CPP_BIN to a directory holding llama-quantize and
// llama-gguf (llama.cpp's build/bin). A tiny llama-architecture model written
// by GgufWriter must quantize with llama-quantize (Q4_K_M); the result must
// read here; and llama-gguf must read our file. Skipped (with a message)
// otherwise: llama.cpp is not part of the build or of CI.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>

#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "tests/test_util.h"

using namespace moelite;
using namespace moelite::test;
namespace fs = std::filesystem;

namespace {

// The smallest model llama.cpp accepts as "llama": the hyper-parameters it
// requires, no vocabulary (tokenizer model "none"), f32 weights with
// ne[0] = in_features, and dims multiple of 256 so every k-quant applies.
void write_tiny_llama(const fs::path& path) {
    const int64_t n_embd = 256, n_ff = 512, n_layer = 2, n_vocab = 256, n_head = 4, n_head_kv = 2;
    const int64_t head_dim = n_embd / n_head;
    GgufWriter w(path.string());
    w.add("general.architecture", GgufValue("llama"));
    w.add("general.name", GgufValue("moelite tiny llama"));
    w.add("llama.block_count", GgufValue(uint32_t(n_layer)));
    w.add("llama.context_length", GgufValue(uint32_t(128)));
    w.add("llama.embedding_length", GgufValue(uint32_t(n_embd)));
    w.add("llama.feed_forward_length", GgufValue(uint32_t(n_ff)));
    w.add("llama.attention.head_count", GgufValue(uint32_t(n_head)));
    w.add("llama.attention.head_count_kv", GgufValue(uint32_t(n_head_kv)));
    w.add("llama.attention.layer_norm_rms_epsilon", GgufValue(1e-5f));
    w.add("llama.rope.dimension_count", GgufValue(uint32_t(head_dim)));
    w.add("llama.vocab_size", GgufValue(uint32_t(n_vocab)));
    w.add("tokenizer.ggml.model", GgufValue("none"));
    std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {{"token_embd.weight", {n_embd, n_vocab}},
                                                                         {"output_norm.weight", {n_embd}},
                                                                         {"output.weight", {n_embd, n_vocab}}};
    for (int l = 0; l < n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        tensors.push_back({p + "attn_norm.weight", {n_embd}});
        tensors.push_back({p + "attn_q.weight", {n_embd, n_embd}});
        tensors.push_back({p + "attn_k.weight", {n_embd, head_dim * n_head_kv}});
        tensors.push_back({p + "attn_v.weight", {n_embd, head_dim * n_head_kv}});
        tensors.push_back({p + "attn_output.weight", {n_embd, n_embd}});
        tensors.push_back({p + "ffn_norm.weight", {n_embd}});
        tensors.push_back({p + "ffn_gate.weight", {n_embd, n_ff}});
        tensors.push_back({p + "ffn_up.weight", {n_embd, n_ff}});
        tensors.push_back({p + "ffn_down.weight", {n_ff, n_embd}});
    }
    for (const auto& [name, ne] : tensors) w.add_tensor(name, DType::F32, ne);
    uint32_t seed = 1;
    for (const auto& [name, ne] : tensors) {
        size_t n = 1;
        for (int64_t d : ne) n *= size_t(d);
        std::vector<float> data = ne.size() == 1 ? std::vector<float>(n, 1.0f) : random_floats(n, seed++, 0.02f);
        w.write_tensor(name, data.data(), n * sizeof(float));
    }
    w.finish();
}

}  // namespace

TEST_CASE("gguf and llama.cpp: our file quantizes with llama-quantize and both read each other's files") {
    const char* bin_env = std::getenv("MOELITE_LLAMA_CPP_BIN");
    if (!bin_env || !*bin_env || !fs::exists(fs::path(bin_env) / "llama-quantize")) {
        MESSAGE("SKIPPED: set MOELITE_LLAMA_CPP_BIN to llama.cpp's build/bin to run");
        return;
    }
    const fs::path bin(bin_env);
    TempDir dir;
    const fs::path f32 = dir / "tiny-f32.gguf";
    const fs::path q4 = dir / "tiny-q4_k_m.gguf";
    write_tiny_llama(f32);

    std::string out;
    const int rc =
        run_command((bin / "llama-quantize").string() + " " + f32.string() + " " + q4.string() + " Q4_K_M", &out);
    CAPTURE(out);
    REQUIRE(rc == 0);

    auto f = GgufFile::open(q4.string());
    CHECK(f->get_string("general.architecture") == "llama");
    CHECK(f->get_u32("llama.block_count") == 2);
    CHECK(f->tensors().size() == 21);
    CHECK(f->get_tensor("blk.0.attn_q.weight").type == DType::Q4_K);
    CHECK(f->get_tensor("blk.0.attn_norm.weight").type == DType::F32);
    size_t quantized = 0;
    for (const GgufTensorInfo& t : f->tensors()) quantized += dtype_is_quantized(t.type) ? 1 : 0;
    CHECK(quantized >= 14);

    if (fs::exists(bin / "llama-gguf")) {
        // 'r n': read the file and list it, without llama-gguf's own data check.
        REQUIRE(run_command((bin / "llama-gguf").string() + " " + f32.string() + " r n", &out) == 0);
        CHECK(out.find("n_tensors: 21") != std::string::npos);
        CHECK(out.find("blk.1.ffn_down.weight") != std::string::npos);
    }
}
