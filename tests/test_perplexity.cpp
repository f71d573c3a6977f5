// Perplexity and KL divergence (models/perplexity.h, models/logprob_file.h,
// `moelite perplexity`) on tiny synthetic models: the perplexity equals
// exp(mean NLL) computed here from the Session's logits of whole chunks; a
// model compared with its own saved reference has KL divergence ~0 and the
// same top token everywhere, a differently seeded one does not; bad inputs
// (missing or malformed files, a context too small, too few tokens, a
// reference from another vocabulary, a truncated reference) are Errors that
// say what is wrong.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "models/model.h"
#include "models/perplexity.h"
#include "models/session.h"
#include "models/synth.h"
#include "tests/test_util.h"
#include "tests/tiny_models.h"

using namespace moelite;
using namespace moelite::test;

namespace {

HParams tiny(int64_t n_vocab = 64) { return test::tiny_dense_hparams(Arch::Llama, n_vocab); }

std::string write_model(const TempDir& dir, const std::string& name, uint64_t seed, int64_t n_vocab = 64) {
    const std::string path = (dir / name).string();
    SynthOptions so;
    so.type = DType::F32;
    so.seed = seed;
    synth_write_model(path, tiny(n_vocab), so);
    return path;
}

std::vector<int32_t> random_tokens(size_t n, int32_t n_vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> dist(0, n_vocab - 1);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = dist(rng);
    return t;
}

// Sum of the NLLs of the scored half of one chunk, from the Session's logits
// of the whole chunk evaluated as one batch (not the way the library does it).
double chunk_nll_sum(std::shared_ptr<const Model> model, Backend& cpu, const int32_t* chunk, int64_t n_ctx,
                     int64_t* count) {
    SessionOptions so;
    so.n_ctx = n_ctx;
    Session s(model, cpu, so);
    std::vector<float> logits;
    s.eval(std::span<const int32_t>(chunk, size_t(n_ctx)), true, &logits);
    const int64_t n_vocab = model->hparams().n_vocab;
    double sum = 0;
    for (int64_t pos = n_ctx / 2; pos <= n_ctx - 2; ++pos) {
        const float* x = logits.data() + pos * n_vocab;
        double m = x[0];
        for (int64_t i = 1; i < n_vocab; ++i) m = std::max(m, double(x[i]));
        double z = 0;
        for (int64_t i = 0; i < n_vocab; ++i) z += std::exp(double(x[i]) - m);
        sum += m + std::log(z) - double(x[chunk[pos + 1]]);
        ++*count;
    }
    return sum;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("perplexity: exp(mean NLL) of the scored halves, as computed from Session logits") {
    TempDir dir;
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto model = Model::load(write_model(dir, "m.gguf", 1), cpu);
    const int64_t n_ctx = 32;
    const std::vector<int32_t> tokens = random_tokens(3 * 32 + 5, 64, 7);  // 3 chunks, a tail left over

    SUBCASE("one chunk") {
        PerplexityOptions po;
        po.n_ctx = n_ctx;
        po.n_chunks = 1;
        const PerplexityResult r = compute_perplexity(model, cpu, tokens, po);
        int64_t count = 0;
        const double sum = chunk_nll_sum(model, cpu, tokens.data(), n_ctx, &count);
        CHECK(count == n_ctx - 1 - n_ctx / 2);
        CHECK(r.count == count);
        CHECK(r.n_chunks == 1);
        CHECK(std::isfinite(r.ppl));
        CHECK(r.ppl > 1.0);
        CHECK(r.ppl == doctest::Approx(std::exp(sum / double(count))).epsilon(1e-4));
        CHECK(r.ppl_error > 0);
    }
    SUBCASE("all chunks the tokens fill, with progress reported after each") {
        PerplexityOptions po;
        po.n_ctx = n_ctx;
        std::vector<double> running;
        const PerplexityResult r =
            compute_perplexity(model, cpu, tokens, po, "", LogprobType::F16, [&](const PerplexityProgress& p) {
                CHECK(p.n_chunks == 3);
                CHECK(p.chunk == int64_t(running.size()) + 1);
                running.push_back(p.ppl);
            });
        CHECK(r.n_chunks == 3);
        REQUIRE(running.size() == 3);
        CHECK(running.back() == doctest::Approx(r.ppl));
        int64_t count = 0;
        double sum = 0;
        for (int c = 0; c < 3; ++c) sum += chunk_nll_sum(model, cpu, tokens.data() + c * n_ctx, n_ctx, &count);
        CHECK(r.count == count);
        CHECK(r.ppl == doctest::Approx(std::exp(sum / double(count))).epsilon(1e-4));
    }
    SUBCASE("with a BOS id, the first token of each chunk is replaced") {
        PerplexityOptions po;
        po.n_ctx = n_ctx;
        po.n_chunks = 1;
        po.bos_id = 3;
        const PerplexityResult r = compute_perplexity(model, cpu, tokens, po);
        std::vector<int32_t> chunk(tokens.begin(), tokens.begin() + n_ctx);
        chunk[0] = 3;
        int64_t count = 0;
        const double sum = chunk_nll_sum(model, cpu, chunk.data(), n_ctx, &count);
        CHECK(r.ppl == doctest::Approx(std::exp(sum / double(count))).epsilon(1e-4));
    }
}

TEST_CASE("KL divergence: a model against its own reference is ~0 with the same top token everywhere") {
    TempDir dir;
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto model = Model::load(write_model(dir, "m.gguf", 1), cpu);
    const std::vector<int32_t> tokens = random_tokens(2 * 32, 64, 11);
    PerplexityOptions po;
    po.n_ctx = 32;
    for (LogprobType type : {LogprobType::F32, LogprobType::F16}) {
        CAPTURE(int(type));
        const std::string base = (dir / "ref.logprobs").string();
        const PerplexityResult ref = compute_perplexity(model, cpu, tokens, po, base, type);
        // The file is exactly header + tokens + scored rows.
        const size_t rows = size_t(2 * (32 - 1 - 16));
        CHECK(std::filesystem::file_size(base) == 48 + 2 * 32 * 4 + rows * 64 * (type == LogprobType::F16 ? 2 : 4));
        const KldResult k = compute_kl_divergence(model, cpu, base, PerplexityOptions{});
        CHECK(k.ppl.count == ref.count);
        CHECK(k.ppl.ppl == doctest::Approx(ref.ppl).epsilon(1e-5));
        CHECK(k.ppl_base.ppl == doctest::Approx(ref.ppl).epsilon(type == LogprobType::F16 ? 1e-3 : 1e-5));
        CHECK(std::abs(k.kld_mean) < (type == LogprobType::F16 ? 1e-3 : 1e-6));
        CHECK(k.same_top == 1.0);
        REQUIRE(k.kld_sorted.size() == size_t(ref.count));
        CHECK(std::abs(k.log_ppl_ratio) < 1e-3);
    }
}

TEST_CASE("KL divergence: a differently seeded model diverges; --chunks limits the chunks read") {
    TempDir dir;
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto ref_model = Model::load(write_model(dir, "a.gguf", 1), cpu);
    auto other = Model::load(write_model(dir, "b.gguf", 2), cpu);
    const std::vector<int32_t> tokens = random_tokens(3 * 32, 64, 13);
    PerplexityOptions po;
    po.n_ctx = 32;
    const std::string base = (dir / "ref.logprobs").string();
    const PerplexityResult ref = compute_perplexity(ref_model, cpu, tokens, po, base, LogprobType::F32);
    const KldResult k = compute_kl_divergence(other, cpu, base, PerplexityOptions{});
    CHECK(k.kld_mean > 1e-3);
    CHECK(k.kld_error > 0);
    CHECK(k.same_top < 0.9);
    CHECK(k.ppl_base.ppl == doctest::Approx(ref.ppl).epsilon(1e-5));
    // The model's own perplexity, independently: the same as its plain run.
    const PerplexityResult own = compute_perplexity(other, cpu, tokens, po);
    CHECK(k.ppl.ppl == doctest::Approx(own.ppl).epsilon(1e-5));
    for (size_t i = 1; i < k.kld_sorted.size(); ++i) CHECK(k.kld_sorted[i - 1] <= k.kld_sorted[i]);
    CHECK(k.kld_sorted.front() >= -1e-6f);  // KL is never negative

    PerplexityOptions one;
    one.n_chunks = 1;
    const KldResult k1 = compute_kl_divergence(other, cpu, base, one);
    CHECK(k1.ppl.n_chunks == 1);
    CHECK(k1.ppl.count == 32 - 1 - 16);
}

TEST_CASE("perplexity: bad inputs are Errors that say what is wrong") {
    TempDir dir;
    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    auto model = Model::load(write_model(dir, "m.gguf", 1), cpu);
    const std::vector<int32_t> tokens = random_tokens(64, 64, 3);
    PerplexityOptions po;

    po.n_ctx = 3;
    CHECK(contains(error_of([&] { compute_perplexity(model, cpu, tokens, po); }), "too small"));
    po.n_ctx = 128;
    CHECK(contains(error_of([&] { compute_perplexity(model, cpu, tokens, po); }), "not enough"));
    po.n_ctx = 16;
    std::vector<int32_t> bad = tokens;
    bad[5] = 64;
    CHECK(contains(error_of([&] { compute_perplexity(model, cpu, bad, po); }), "outside the vocabulary"));

    // Token files.
    CHECK(contains(error_of([&] { read_token_file((dir / "none.txt").string()); }), "none.txt"));
    {
        std::ofstream((dir / "t.txt").string()) << "1 2\n3\t4  x5\n";
        CHECK(contains(error_of([&] { read_token_file((dir / "t.txt").string()); }), "'x5'"));
        std::ofstream((dir / "t.txt").string()) << "1 2\n3\t4  5\n";
        CHECK(read_token_file((dir / "t.txt").string()) == std::vector<int32_t>{1, 2, 3, 4, 5});
        std::ofstream((dir / "e.txt").string()) << " \n";
        CHECK(contains(error_of([&] { read_token_file((dir / "e.txt").string()); }), "no token ids"));
    }

    // Reference files.
    const std::string base = (dir / "ref.logprobs").string();
    compute_perplexity(model, cpu, tokens, po, base, LogprobType::F16);
    auto big_vocab = Model::load(write_model(dir, "v80.gguf", 1, 80), cpu);
    CHECK(contains(error_of([&] { compute_kl_divergence(big_vocab, cpu, base, {}); }), "vocabulary of 64"));
    CHECK(contains(error_of([&] { compute_kl_divergence(model, cpu, (dir / "nope").string(), {}); }), "nope"));
    {
        std::ofstream((dir / "junk").string()) << std::string(100, 'j');
        CHECK(contains(error_of([&] { compute_kl_divergence(model, cpu, (dir / "junk").string(), {}); }),
                       "not a moelite log-probability file"));
        const auto size = std::filesystem::file_size(base);
        std::filesystem::copy_file(base, dir / "cut");
        std::filesystem::resize_file(dir / "cut", size - 10);
        CHECK(contains(error_of([&] { compute_kl_divergence(model, cpu, (dir / "cut").string(), {}); }), "truncated"));
    }
}

TEST_CASE("moelite perplexity: running values and the final estimate; the KL mode end to end") {
    TempDir dir;
    const std::string model = write_model(dir, "m.gguf", 1);
    const std::string other = write_model(dir, "o.gguf", 5);
    {
        std::ofstream f((dir / "tokens.txt").string());
        for (int32_t t : random_tokens(2 * 32, 64, 9)) f << t << ' ';
    }
    const std::string bin = moelite_binary().string();
    const std::string tok = (dir / "tokens.txt").string();
    const std::string base = (dir / "ref.logprobs").string();
    std::string out;
    REQUIRE(run_command(
                bin + " perplexity -m " + model + " --tokens-file " + tok + " -c 32 -t 1 --kl-divergence-base " + base,
                &out) == 0);
    CHECK(contains(out, "[1]"));
    CHECK(contains(out, "[2]"));
    CHECK(contains(out, "Final estimate: PPL = "));
    REQUIRE(std::filesystem::exists(base));

    REQUIRE(run_command(bin + " perplexity -m " + model + " --kl-divergence --kl-divergence-base " + base +
                            " -t 1 --json 2>/dev/null",
                        &out) == 0);
    const auto j = nlohmann::json::parse(out);
    CHECK(j["same_top"].get<double>() == 1.0);
    CHECK(std::abs(j["kld_mean"].get<double>()) < 1e-3);

    REQUIRE(run_command(bin + " perplexity -m " + other + " --kl-divergence --kl-divergence-base " + base + " -t 1",
                        &out) == 0);
    CHECK(contains(out, "Mean    KLD"));
    CHECK(contains(out, "Same top p"));

    // Bad invocations: one line naming the problem, non-zero exit.
    CHECK(run_command(bin + " perplexity -m " + model + " --tokens-file " + (dir / "missing.txt").string(), &out) == 1);
    CHECK(contains(out, "missing.txt"));
    CHECK(run_command(bin + " perplexity -m " + model + " --kl-divergence", &out) == 1);
    CHECK(contains(out, "--kl-divergence-base"));
    CHECK(run_command(bin + " perplexity -m " + model + " --tokens-file " + tok + " -c 2", &out) == 1);
    CHECK(contains(out, "too small"));
    CHECK(run_command(bin + " perplexity -m " + model + " --kl-divergence --kl-divergence-base " + base + " -c 64",
                      &out) == 1);
    CHECK(contains(out, "context of 32"));
}

TEST_CASE("moelite perplexity -f: the text through the model's tokenizer, BOS at the start of every chunk") {
    TempDir dir;
    const std::string path = (dir / "tok.gguf").string();
    SynthOptions so;
    so.type = DType::F32;
    so.tokenizer = synth_demo_tokenizer();
    const int64_t n_vocab = int64_t(so.tokenizer->tokens.size());
    synth_write_model(path, tiny(n_vocab), so);
    const std::string text =
        "The quick brown fox jumps over the lazy dog; <think> is only text here.\n"
        "Pack my box with five dozen liquor jugs.\n";
    std::ofstream((dir / "text.txt").string(), std::ios::binary) << text;

    std::string out;
    REQUIRE(run_command(moelite_binary().string() + " perplexity -m " + path + " -f " + (dir / "text.txt").string() +
                            " -c 32 -t 1 --json 2>/dev/null",
                        &out) == 0);
    const auto j = nlohmann::json::parse(out);

    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    auto model = Model::load(path, cpu);
    const Tokenizer* tok = model->tokenizer();
    REQUIRE(tok != nullptr);
    const std::vector<int32_t> tokens = tok->encode(text, tok->add_bos(), false);
    PerplexityOptions po;
    po.n_ctx = 32;
    po.bos_id = tok->add_bos() ? tok->bos_id() : -1;
    const PerplexityResult r = compute_perplexity(model, cpu, tokens, po);
    CHECK(j["n_chunks"] == int64_t(tokens.size()) / 32);
    CHECK(j["count"] == r.count);
    CHECK(j["ppl"].get<double>() == doctest::Approx(r.ppl).epsilon(1e-6));

    // A model without a tokenizer cannot read text.
    const std::string bare = write_model(dir, "bare.gguf", 1);
    CHECK(run_command(
              moelite_binary().string() + " perplexity -m " + bare + " -f " + (dir / "text.txt").string() + " -c 32",
              &out) == 1);
    CHECK(contains(out, "no tokenizer"));
}
