// `moelite synth` (models/synth.h) with the converter's recipes: on a tiny
// MoE shape whose rows do not all fit a K-quant block, every tensor is written
// in the type the recipe chooses, and those types are llama.cpp's (Q4_K_M's
// Q6_K layers, the Q5_0 / Q8_0 / Q5_1 fallbacks, F32 routers and norms), as
// spelled out here from its quantizer's rules; plain types refuse rows that do
// not fit. Big quantized tensors are drawn from a pool of blocks: they must
// still read back as N(0, sd^2) values with distinct rows. The command
// (`moelite synth --type q4_k_m`) wires the recipe in the same way.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "convert/quant_recipe.h"
#include "core/error.h"
#include "core/gguf.h"
#include "models/model.h"
#include "models/session.h"
#include "models/synth.h"
#include "quant/quant.h"
#include "tests/test_util.h"
#include "tests/tiny_models.h"

using namespace moelite;
using namespace moelite::test;

namespace {

// 8 layers (one dense), rows of 256 (fit K-quants) and of 128, 96, 64 (fit
// only 32-element blocks).
HParams tiny_moe() {
    HParams hp = test::tiny_deepseek2_hparams();
    hp.n_vocab = 300;
    hp.n_embd = 256;
    hp.n_ff = 512;
    hp.n_layer = 8;
    hp.n_head = 2;
    hp.kv_lora_rank = 128;
    hp.n_rot = 32;
    hp.head_dim_k_mla = 64 + 32;
    hp.head_dim_v_mla = 64;
    hp.head_dim_k = hp.kv_lora_rank + hp.n_rot;
    hp.head_dim_v = hp.kv_lora_rank;
    hp.n_expert = 4;
    hp.n_expert_used = 2;
    hp.n_ff_exp = 96;
    return hp;
}

// What `moelite synth --type NAME` does.
SynthOptions recipe_options(const std::string& name, const HParams& hp) {
    const QuantRecipe recipe = recipe_from_name(name);
    SynthOptions so;
    so.type = recipe.base;
    so.file_type = uint32_t(recipe.file_type);
    so.tensor_type = [recipe, shape = recipe_model(hp)](const std::string& n, const std::vector<int64_t>& ne) {
        return recipe_choose(recipe, shape, n, ne).type;
    };
    return so;
}

DType type_of(const GgufFile& f, const std::string& name) {
    return f.get_tensor(name).type;
}

std::string blk(int layer, const char* what) {
    return "blk." + std::to_string(layer) + "." + what + ".weight";
}

}  // namespace

TEST_CASE("synth: q4_k_m follows the recipe tensor by tensor, with llama.cpp's mix and fallbacks") {
    TempDir dir;
    const HParams hp = tiny_moe();
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, recipe_options("q4_k_m", hp));
    auto f = GgufFile::open(path);

    // Every tensor as the recipe says.
    const QuantRecipe recipe = recipe_from_name("q4_k_m");
    for (const auto& t : f->tensors()) {
        std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
        CHECK_MESSAGE(t.type == recipe_choose(recipe, recipe_model(hp), t.name, ne).type, t.name);
    }
    CHECK(f->get_u32("general.file_type") == 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M

    // And the recipe's choices are llama.cpp's, for this shape.
    CHECK(type_of(*f, "output.weight") == DType::Q6_K);
    CHECK(type_of(*f, "token_embd.weight") == DType::Q4_K);
    CHECK(type_of(*f, "output_norm.weight") == DType::F32);
    CHECK(type_of(*f, blk(0, "ffn_down")) == DType::Q6_K);  // dense lead layer, first eighth
    for (int il = 1; il < 8; ++il) {
        CAPTURE(il);
        // use_more_bits for 8 layers: 0, 3, 6, 7. ffn_down_exps rows are 96 wide:
        // Q6_K falls back to Q8_0, Q4_K to Q5_0.
        const bool more = il == 3 || il == 6 || il == 7;
        CHECK(type_of(*f, blk(il, "ffn_down_exps")) == (more ? DType::Q8_0 : DType::Q5_0));
        CHECK(type_of(*f, blk(il, "ffn_down_shexp")) == (more ? DType::Q8_0 : DType::Q5_0));
        CHECK(type_of(*f, blk(il, "ffn_up_exps")) == DType::Q4_K);
        CHECK(type_of(*f, blk(il, "ffn_gate_inp")) == DType::F32);
        CHECK(type_of(*f, blk(il, "attn_q")) == DType::Q4_K);
        CHECK(type_of(*f, blk(il, "attn_kv_a_mqa")) == DType::Q4_K);
        CHECK(type_of(*f, blk(il, "attn_k_b")) == DType::Q5_0);     // rows of 64
        CHECK(type_of(*f, blk(il, "attn_v_b")) == DType::Q5_0);     // rows of 128
        CHECK(type_of(*f, blk(il, "attn_output")) == DType::Q5_0);  // rows of 128
        CHECK(type_of(*f, blk(il, "attn_kv_a_norm")) == DType::F32);
    }

    // The file runs.
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    Session s(Model::load(path, cpu), cpu);
    std::vector<float> logits;
    const std::vector<int32_t> toks = {1, 2, 3};
    s.eval(toks, false, &logits);
    for (float x : logits) REQUIRE(std::isfinite(x));
}

TEST_CASE("synth: q5_k_m falls back to Q5_1 and Q8_0; plain types refuse rows that do not fit") {
    TempDir dir;
    const HParams hp = tiny_moe();
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, recipe_options("q5_k_m", hp));
    auto f = GgufFile::open(path);
    CHECK(f->get_u32("general.file_type") == 17);  // LLAMA_FTYPE_MOSTLY_Q5_K_M
    CHECK(type_of(*f, blk(2, "ffn_down_exps")) == DType::Q5_1);
    CHECK(type_of(*f, blk(3, "ffn_down_exps")) == DType::Q8_0);
    CHECK(type_of(*f, blk(2, "ffn_up_exps")) == DType::Q5_K);
    CHECK(type_of(*f, "output.weight") == DType::Q6_K);

    CHECK_THROWS_AS(synth_write_model((dir / "plain.gguf").string(), hp, synth_type(DType::Q4_K)), Error);
}

TEST_CASE("synth: tensors drawn from the block pool read back as N(0, sd^2) with distinct rows") {
    TempDir dir;
    HParams hp;
    hp.arch = Arch::Qwen2;
    hp.n_vocab = synth_pool_blocks;  // token_embd and output: 4 Q4_K blocks a row, 4 pools' worth
    hp.n_ctx_train = 64;
    hp.n_embd = 1024;
    hp.n_ff = 256;
    hp.n_layer = 1;
    hp.n_head = 8;
    hp.n_head_kv = 4;
    hp.head_dim_k = hp.head_dim_v = 128;
    hp.n_rot = 128;
    hp.rms_eps = 1e-6f;
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, synth_type(DType::Q4_K));
    auto f = GgufFile::open(path);
    for (const auto& [name, sd] :
         {std::pair<std::string, double>{"token_embd.weight", 1.0}, {"output.weight", 1.0 / 32.0}}) {
        CAPTURE(name);
        const GgufTensorInfo& t = f->get_tensor(name);
        REQUIRE(t.type == DType::Q4_K);
        const size_t row_bytes = dtype_row_bytes(t.type, t.ne[0]);
        std::vector<float> row(size_t(t.ne[0])), first(size_t(t.ne[0]));
        double sum = 0, sum2 = 0;
        int64_t same_as_first = 0, not_finite = 0;
        for (int64_t r = 0; r < t.ne[1]; ++r) {
            quant_traits(t.type)->to_float(t.data + size_t(r) * row_bytes, row.data(), t.ne[0]);
            if (r == 0)
                first = row;
            else
                same_as_first += row == first;
            for (float x : row) {
                not_finite += !std::isfinite(x);
                sum += x;
                sum2 += double(x) * x;
            }
        }
        const double n = double(t.nelements()), mean = sum / n, sdev = std::sqrt(sum2 / n - mean * mean);
        CHECK(std::abs(mean) < 0.05 * sd);
        CHECK(sdev == doctest::Approx(sd).epsilon(0.1));
        CHECK(not_finite == 0);
        CHECK(same_as_first == 0);
    }
}

TEST_CASE("moelite synth: --type q4_k_m writes the recipe's types, a chat tokenizer, and refuses unknown types") {
    TempDir dir;
    const std::string path = (dir / "demo.gguf").string(), bin = moelite_binary().string();
    std::string out;
    REQUIRE(run_command(bin + " synth --preset demo --type q4_k_m --layers 2 -o " + path, &out) == 0);
    auto f = GgufFile::open(path);
    CHECK(f->get_u32("general.file_type") == 15);
    CHECK(f->get_string("tokenizer.ggml.model") == "gpt2");
    CHECK(!f->get_string("tokenizer.chat_template").empty());
    CHECK(type_of(*f, "output.weight") == DType::Q6_K);
    CHECK(type_of(*f, blk(0, "ffn_down")) == DType::Q4_K);
    CHECK(type_of(*f, blk(1, "ffn_down")) == DType::Q6_K);  // the last eighth of 2 layers
    CHECK(type_of(*f, blk(1, "attn_v")) == DType::Q6_K);
    CHECK(type_of(*f, blk(0, "attn_q")) == DType::Q4_K);

    CHECK(run_command(bin + " synth --preset demo --type q3_k_xl -o " + (dir / "x.gguf").string(), &out) == 1);
    CHECK(out.find("unknown type 'q3_k_xl'") != std::string::npos);
    CHECK(!std::filesystem::exists(dir / "x.gguf"));
}
