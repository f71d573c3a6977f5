// Golden logits through the library: every checkpoint fixture, converted,
// reproduces the logits of the reference that produced it (llama.cpp for the
// dense fixtures, DeepSeek's own inference code for the deepseek ones) both as
// one batch and one token at a time through the KV cache, with an f32 and an
// f16 cache, and with q8_0 and 4-bit weights. (test_convert_io.cpp checks the batch
// path through the command line.)
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/cpu/cpu_backend.h"
#include "convert/converter.h"
#include "models/model.h"
#include "models/session.h"
#include "tests/test_util.h"

using namespace moelite;

namespace {

struct Expected {
    std::vector<int32_t> tokens;
    std::vector<std::vector<float>> logits;
};

Expected load_expected(const std::string& fixture) {
    std::ifstream in(test::fixtures_dir() / fixture / "expected.json");
    REQUIRE(in.good());
    auto j = nlohmann::json::parse(in);
    Expected e;
    e.tokens = j["tokens"].get<std::vector<int32_t>>();
    e.logits = j["logits"].get<std::vector<std::vector<float>>>();
    return e;
}

struct Comparison {
    float max_abs_diff = 0;
    int top1_agree = 0;
    // Positions whose reference top-1 leads its runner-up by more than
    // kDecisiveMargin, and how many of those agree.
    int decisive = 0, decisive_agree = 0;
    float largest_missed_margin = 0;  // the reference's lead at the worst disagreement
};

// A reference lead this large is not a near tie that 4-bit rounding may flip.
constexpr float kDecisiveMargin = 0.5f;

Comparison compare(const Expected& e, const std::vector<float>& got) {
    Comparison c;
    const size_t V = e.logits[0].size();
    REQUIRE(got.size() == e.tokens.size() * V);
    for (size_t i = 0; i < e.tokens.size(); ++i) {
        size_t best_ref = 0, best_got = 0;
        for (size_t j = 0; j < V; ++j) {
            c.max_abs_diff = std::max(c.max_abs_diff, std::abs(got[i * V + j] - e.logits[i][j]));
            if (e.logits[i][j] > e.logits[i][best_ref]) best_ref = j;
            if (got[i * V + j] > got[i * V + best_got]) best_got = j;
        }
        c.top1_agree += best_ref == best_got;
        float second = -INFINITY;
        for (size_t j = 0; j < V; ++j)
            if (j != best_ref) second = std::max(second, e.logits[i][j]);
        const float margin = e.logits[i][best_ref] - second;
        if (best_ref != best_got) c.largest_missed_margin = std::max(c.largest_missed_margin, margin);
        if (margin > kDecisiveMargin) {
            ++c.decisive;
            c.decisive_agree += best_ref == best_got;
        }
    }
    return c;
}

// Converts `fixture` to `type`, evaluates its tokens both ways, compares.
// Returns the batch comparison.
Comparison check_fixture(const std::string& fixture, const char* type, DType cache, float tol, int min_top1) {
    test::TempDir dir;
    const std::string out = (dir / "model.gguf").string();
    ConvertOptions opts;
    opts.recipe = recipe_from_name(type);
    opts.n_threads = 2;
    convert_checkpoint((test::fixtures_dir() / fixture).string(), out, opts);

    const Expected e = load_expected(fixture);
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto model = Model::load(out, cpu);
    Session batch(model, cpu, SessionOptions{64, 512, cache});
    std::vector<float> all;
    batch.eval(e.tokens, true, &all);
    const Comparison cb = compare(e, all);

    Session single(model, cpu, SessionOptions{64, 512, cache});
    std::vector<float> seq, row;
    for (int32_t t : e.tokens) {
        single.eval(std::span<const int32_t>(&t, 1), false, &row);
        seq.insert(seq.end(), row.begin(), row.end());
    }
    const Comparison cs = compare(e, seq);
    MESSAGE(fixture << " " << std::string(type) << " cache " << std::string(dtype_name(cache)) << ": batch max |diff| "
                    << cb.max_abs_diff << ", top-1 " << cb.top1_agree << "/" << e.tokens.size() << "; one by one "
                    << cs.max_abs_diff << ", " << cs.top1_agree << "; decisive positions " << cb.decisive_agree << "/"
                    << cb.decisive << ", widest missed margin "
                    << std::max(cb.largest_missed_margin, cs.largest_missed_margin));
    CHECK(cb.max_abs_diff < tol);
    CHECK(cs.max_abs_diff < tol);
    CHECK(cb.top1_agree >= min_top1);
    CHECK(cs.top1_agree >= min_top1);
    CHECK(cb.decisive_agree == cs.decisive_agree);
    return cb;
}

}  // namespace

TEST_CASE("golden: f32 conversions reproduce the reference logits") {
    MOELITE_REQUIRE_FIXTURES();
    for (const char* f : {"qwen2-tiny", "llama3-tiny", "deepseek-v3-tiny", "deepseek-v2-lite-tiny"})
        check_fixture(f, "f32", DType::F32, 1e-4f, 24);
}

TEST_CASE("golden: f16 cache stays close") {
    MOELITE_REQUIRE_FIXTURES();
    // The fixture READMEs measured llama.cpp's f16 cache at 1.3e-3 from the f32 reference.
    for (const char* f : {"qwen2-tiny", "llama3-tiny", "deepseek-v3-tiny", "deepseek-v2-lite-tiny"})
        check_fixture(f, "f32", DType::F16, 1e-2f, 24);
}

TEST_CASE("golden: q8_0 weights stay close") {
    MOELITE_REQUIRE_FIXTURES();
    // The READMEs: the references themselves move by up to 0.06 (dense) and 0.1
    // (deepseek) with Q8_0 weights (embeddings kept); here the embeddings and the
    // activations are quantized too. The deepseek fixtures' routing margins are
    // small (0.007): a quantized run may pick another expert at a step, which
    // moves that step's logits further (measured: 0.66 at one step of 24).
    for (const char* f : {"qwen2-tiny", "llama3-tiny"}) check_fixture(f, "q8_0", DType::F32, 0.25f, 23);
    for (const char* f : {"deepseek-v3-tiny", "deepseek-v2-lite-tiny"}) check_fixture(f, "q8_0", DType::F32, 1.0f, 22);
}

TEST_CASE("golden: q8_0 cache stays close") {
    MOELITE_REQUIRE_FIXTURES();
    for (const char* f : {"qwen2-tiny", "llama3-tiny"})
        check_fixture(f, "f32", DType::Q8_0, 0.05f, 23);  // qwen2-tiny's smallest top-1 margin is 0.005
}

TEST_CASE("golden: 4-bit weights keep every decisive top-1") {
    MOELITE_REQUIRE_FIXTURES();
    // The fixtures' logits are nearly flat (random weights): qwen2-tiny's
    // reference leads by more than kDecisiveMargin at only 2 of 24 positions,
    // so 4-bit rounding (max |diff| 0.6-2.5 here) flips most near-ties and
    // overall top-1 agreement is 9-19 of 24. llama.cpp (d32676d77, built
    // outside the repo), running the very same 4-bit files with an f32 cache,
    // agrees with the reference exactly as often (q4_k_m / q4_0: qwen2 13 / 19,
    // llama3 19 / 17, v2-lite 13 / 14, v3 12 / 9 of 24) and with our argmax at
    // 21-24 of 24 positions. What must hold is that no decisive position flips;
    // in the deepseek models a flipped expert choice (routing margins 0.007)
    // may move a step further.
    for (const char* t : {"q4_k_m", "q4_0"}) {
        for (const char* f : {"qwen2-tiny", "llama3-tiny"}) {
            const Comparison c = check_fixture(f, t, DType::F32, 1.5f, 12);
            CHECK(c.decisive_agree == c.decisive);
        }
        for (const char* f : {"deepseek-v3-tiny", "deepseek-v2-lite-tiny"}) {
            const Comparison c = check_fixture(f, t, DType::F32, 3.0f, 8);
            CHECK(c.decisive_agree >= c.decisive - 2);
        }
    }
}

TEST_CASE("golden: f16 and bf16 conversions stay close") {
    MOELITE_REQUIRE_FIXTURES();
    for (const char* f : {"qwen2-tiny", "llama3-tiny", "deepseek-v3-tiny", "deepseek-v2-lite-tiny"})
        check_fixture(f, "f16", DType::F32, 0.02f, 24);
    // BF16 weights meet F32 activations (quant/quant.cpp). The dense and V2-Lite
    // checkpoints are BF16, so the conversion is lossless and F32-tight; the V3
    // one is FP8 x scale, rounded to BF16: its README measured the reference
    // itself with BF16-rounded weights at 0.028, 24/24 (we: 0.0276). llama.cpp,
    // which rounds the activations to BF16 too, gives 1.548 and 23/24 there.
    for (const char* f : {"qwen2-tiny", "llama3-tiny", "deepseek-v2-lite-tiny"})
        check_fixture(f, "bf16", DType::F32, 1e-4f, 24);
    check_fixture("deepseek-v3-tiny", "bf16", DType::F32, 0.04f, 24);
}
