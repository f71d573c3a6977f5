// `moelite bench` and its library (models/bench.h) on tiny synthetic models:
// rates are positive with one sample per repetition, the JSON output is well
// formed with llama-bench's field names plus the ISA and the roofline
// fraction, the bytes read per generated token follow the stated rule
// (computed here independently from the file's tensor table), and the
// bandwidth probe returns a rate. No timing thresholds: the machine is shared.
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/gguf.h"
#include "models/bench.h"
#include "models/model.h"
#include "models/synth.h"
#include "tests/test_util.h"
#include "tests/tiny_models.h"

using namespace moelite;
using namespace moelite::test;

namespace {

HParams tiny_dense() { return test::tiny_dense_hparams(Arch::Qwen2); }

HParams tiny_moe() { return test::tiny_deepseek2_hparams(); }

std::string write_model(const TempDir& dir, const std::string& name, const HParams& hp, DType type = DType::Q8_0) {
    const std::string path = (dir / name).string();
    SynthOptions so;
    so.type = type;
    synth_write_model(path, hp, so);
    return path;
}

// The rule of models/bench.h, from the file's tensor table by name.
size_t expected_bytes_per_token(const std::string& path, const HParams& hp) {
    auto f = GgufFile::open(path);
    size_t bytes = 0;
    for (const auto& t : f->tensors()) {
        size_t b = t.nbytes;
        if (t.name == "token_embd.weight" && !hp.tied_embeddings) b = t.nbytes / size_t(t.ne[1]);
        if (t.name.find("_exps.weight") != std::string::npos)
            b = t.nbytes / size_t(hp.n_expert) * size_t(hp.n_expert_used);
        bytes += b;
    }
    return bytes;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("bench: mean and sample standard deviation") {
    CHECK(mean_of({1, 2, 3, 4}) == doctest::Approx(2.5));
    CHECK(stddev_of({1, 2, 3, 4}) == doctest::Approx(std::sqrt(5.0 / 3.0)));
    CHECK(stddev_of({7}) == 0.0);
    CHECK(mean_of({}) == 0.0);
}

TEST_CASE("bench: pp and tg on a tiny model give one positive rate per repetition") {
    TempDir dir;
    const std::string path = write_model(dir, "tiny.gguf", tiny_dense());
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto model = Model::load(path, cpu);
    BenchOptions bo;
    bo.repetitions = 3;
    const BenchResult pp = bench_prompt(model, cpu, 24, bo);
    CHECK(pp.test == "pp24");
    CHECK(pp.n_prompt == 24);
    CHECK(pp.n_gen == 0);
    REQUIRE(pp.samples_ts.size() == 3);
    REQUIRE(pp.samples_ns.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
        CHECK(pp.samples_ns[i] > 0);
        // rate = tokens / time, sample by sample
        CHECK(pp.samples_ts[i] == doctest::Approx(24e9 / pp.samples_ns[i]));
    }
    CHECK(pp.avg_ts() > 0);
    CHECK(pp.stddev_ts() >= 0);

    const BenchResult tg = bench_generation(model, cpu, 10, bo);
    CHECK(tg.test == "tg10");
    CHECK(tg.n_gen == 10);
    REQUIRE(tg.samples_ts.size() == 3);
    CHECK(tg.avg_ts() > 0);

    // At a depth: the context holds that many tokens before each run, and
    // each run starts back from them (without the rewind the second run
    // would not fit the context, which is sized depth + n).
    bo.n_depth = 12;
    const BenchResult pp_deep = bench_prompt(model, cpu, 24, bo);
    CHECK(pp_deep.test == "pp24 @ d12");
    CHECK(pp_deep.n_depth == 12);
    CHECK(pp_deep.samples_ts.size() == 3);
    const BenchResult tg_deep = bench_generation(model, cpu, 10, bo);
    CHECK(tg_deep.test == "tg10 @ d12");
    CHECK(tg_deep.n_depth == 12);
    CHECK(tg_deep.samples_ts.size() == 3);
    bo.n_depth = -1;
    CHECK_THROWS_AS(bench_prompt(model, cpu, 8, bo), Error);
    bo.n_depth = 0;

    bo.repetitions = 0;
    CHECK_THROWS_AS(bench_prompt(model, cpu, 8, bo), Error);
    bo.repetitions = 1;
    CHECK_THROWS_AS(bench_generation(model, cpu, 0, bo), Error);
}

TEST_CASE("bench: bytes per generated token — one embedding row, every other weight, only the active experts") {
    TempDir dir;
    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    SUBCASE("dense, untied output") {
        const HParams hp = tiny_dense();
        const std::string path = write_model(dir, "dense.gguf", hp);
        auto model = Model::load(path, cpu);
        const size_t want = expected_bytes_per_token(path, hp);
        CHECK(decode_bytes_per_token(*model) == want);
        // One row of the embedding is all a token reads of it.
        const Tensor* emb = model->weight(TensorRole::TokenEmbd);
        CHECK(decode_bytes_per_token(*model) == model->weight_bytes() - emb->nbytes() + emb->row_bytes());
    }
    SUBCASE("dense, tied output: the embedding is read whole as the output projection") {
        HParams hp = tiny_dense();
        hp.tied_embeddings = true;
        const std::string path = write_model(dir, "tied.gguf", hp);
        auto model = Model::load(path, cpu);
        REQUIRE(model->hparams().tied_embeddings);
        CHECK(decode_bytes_per_token(*model) == model->weight_bytes());
    }
    SUBCASE("MoE: n_expert_used of n_expert in each expert tensor") {
        const HParams hp = tiny_moe();
        const std::string path = write_model(dir, "moe.gguf", hp);
        auto model = Model::load(path, cpu);
        const size_t want = expected_bytes_per_token(path, hp);
        CHECK(decode_bytes_per_token(*model) == want);
        // Expert tensors are counted at 4/16 of their size.
        size_t exps = 0;
        for (const Tensor& t : model->weights())
            if (t.name.find("_exps") != std::string::npos) exps += t.nbytes();
        REQUIRE(exps > 0);
        const Tensor* emb = model->weight(TensorRole::TokenEmbd);
        CHECK(want == model->weight_bytes() - emb->nbytes() + emb->row_bytes() - exps / 16 * 12);
    }
}

TEST_CASE("bench: the bandwidth probe reads the buffer and returns a rate") {
    const BandwidthResult bw = measure_read_bandwidth(2, size_t(8) << 20, 2);
    CHECK(bw.gb_per_s > 0);
    CHECK(bw.bytes == (size_t(8) << 20));
    CHECK(bw.n_threads == 2);
    CHECK(bw.runs == 2);
    CHECK_THROWS_AS(measure_read_bandwidth(1, 1024, 1), Error);  // smaller than 1 MiB
    CHECK_THROWS_AS(measure_read_bandwidth(1, size_t(8) << 20, 0), Error);
}

TEST_CASE("moelite bench --json: one object per test with llama-bench's fields, the ISA and the roofline") {
    TempDir dir;
    const std::string path = write_model(dir, "tiny.gguf", tiny_dense());
    std::string out;
    const std::string cmd =
        moelite_binary().string() + " bench -m " + path + " -p 16 -n 6 -r 2 -t 1 --bandwidth-mib 16 --json 2>/dev/null";
    REQUIRE(run_command(cmd, &out) == 0);
    const auto j = nlohmann::json::parse(out);
    REQUIRE(j.is_array());
    REQUIRE(j.size() == 2);
    for (const auto& t : j) {
        for (const char* field :
             {"model_filename", "model_type", "model_size", "model_n_params", "n_threads", "n_prompt", "n_gen",
              "avg_ts", "stddev_ts", "avg_ns", "stddev_ns", "samples_ts", "samples_ns", "isa", "backends", "test_time"})
            CHECK_MESSAGE(t.contains(field), field);
        CHECK(t["n_threads"] == 1);
        CHECK(t["avg_ts"].get<double>() > 0);
        CHECK(t["samples_ts"].size() == 2);
        CHECK(t["model_size"].get<int64_t>() > 0);
        CHECK(!t["isa"].get<std::string>().empty());
    }
    CHECK(j[0]["n_prompt"] == 16);
    CHECK(j[0]["n_gen"] == 0);
    CHECK(j[0]["n_depth"] == 0);
    CHECK(!j[0].contains("roofline_fraction"));
    CHECK(j[1]["n_prompt"] == 0);
    CHECK(j[1]["n_gen"] == 6);
    REQUIRE(j[1].contains("roofline_fraction"));
    CHECK(j[1]["roofline_fraction"].get<double>() > 0);
    CHECK(j[1]["bandwidth_gbs"].get<double>() > 0);
    // roofline = bandwidth / bytes per token, and the fraction is measured / roofline
    const double roofline = j[1]["bandwidth_gbs"].get<double>() * 1e9 / j[1]["bytes_per_token"].get<double>();
    CHECK(j[1]["roofline_ts"].get<double>() == doctest::Approx(roofline));
    CHECK(j[1]["roofline_fraction"].get<double>() == doctest::Approx(j[1]["avg_ts"].get<double>() / roofline));
}

TEST_CASE("moelite bench: a Markdown table like llama-bench's; bad input is one clear error") {
    TempDir dir;
    const std::string path = write_model(dir, "tiny.gguf", tiny_dense());
    std::string out;
    REQUIRE(run_command(moelite_binary().string() + " bench -m " + path + " -p 8 -n 4 -r 1 -t 1 --bandwidth-mib 16",
                        &out) == 0);
    CHECK(contains(out, "| model"));
    CHECK(contains(out, " t/s |"));
    CHECK(contains(out, " pp8 |"));
    CHECK(contains(out, " tg4 |"));
    CHECK(contains(out, "of it"));  // the roofline line

    REQUIRE(run_command(moelite_binary().string() + " bench -m " + path + " -p 8 -n 4 -d 5 -r 2 -t 1 --bandwidth-mib 16",
                        &out) == 0);
    CHECK(contains(out, " pp8 @ d5 |"));
    CHECK(contains(out, " tg4 @ d5 |"));
    CHECK(contains(out, "not counted"));  // the roofline leaves out the cache at depth
    REQUIRE(run_command(moelite_binary().string() + " bench -m " + path + " -p 8 -n 0 -d 5 -r 1 -t 1 --json 2>/dev/null",
                        &out) == 0);
    CHECK(nlohmann::json::parse(out)[0]["n_depth"] == 5);
    REQUIRE(run_command(moelite_binary().string() + " bench -m " + path + " -d -3", &out) == 1);
    CHECK(contains(out, "-d"));

    REQUIRE(run_command(moelite_binary().string() + " bench -m " + (dir / "missing.gguf").string(), &out) == 1);
    CHECK(contains(out, "missing.gguf"));
    REQUIRE(run_command(moelite_binary().string() + " bench -m " + path + " -p 0 -n 0", &out) == 1);
    CHECK(contains(out, "nothing to do"));
    REQUIRE(run_command(moelite_binary().string() + " bench -m " + path + " -r 0", &out) == 1);
    CHECK(contains(out, "-r"));
}
