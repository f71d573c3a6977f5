// generation_config.json -> general.sampling.* (convert/generation_config.h)
// and back into the sampler's defaults (models/gguf_meta.h).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "convert/generation_config.h"
#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "models/gguf_meta.h"
#include "tests/convert_test_util.h"

using namespace moelite;
using namespace moelite::test;
namespace fs = std::filesystem;

namespace {

const GgufValue* find_kv(const std::vector<GgufKV>& kvs, const std::string& key) {
    for (const GgufKV& kv : kvs)
        if (kv.key == key) return &kv.value;
    return nullptr;
}

bool mentions(const std::vector<std::string>& notes, const std::string& what) {
    for (const std::string& n : notes)
        if (n.find(what) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("generation_config: the keys llama.cpp's converter writes, with its value types") {
    std::vector<std::string> notes;
    // DeepSeek-R1-Distill-Qwen's file, verbatim.
    const auto kvs = sampling_metadata_from_json(
        R"({"_from_model_config": true, "bos_token_id": 151646, "eos_token_id": 151643, "do_sample": true,
            "temperature": 0.6, "top_p": 0.95, "transformers_version": "4.44.0"})",
        "gc.json", &notes);
    CHECK(notes.empty());
    REQUIRE(kvs.size() == 2);
    CHECK(kvs[0].key == "general.sampling.top_p");
    REQUIRE(kvs[0].value.get_if<float>());
    CHECK(*kvs[0].value.get_if<float>() == doctest::Approx(0.95f));
    CHECK(kvs[1].key == "general.sampling.temp");
    CHECK(*kvs[1].value.get_if<float>() == doctest::Approx(0.6f));

    notes.clear();
    const auto all = sampling_metadata_from_json(
        R"({"top_k": 20, "min_p": 0.05, "penalty_last_n": -1, "penalty_repeat": 1.1, "repetition_penalty": 1.5,
            "mirostat": 2, "mirostat_tau": 5.0, "mirostat_eta": 0.1, "xtc_probability": 0.5,
            "xtc_threshold": 0.1, "sequence": "kpt"})",
        "gc.json", &notes);
    CHECK(notes.empty());
    CHECK(all.size() == 10);
    REQUIRE(find_kv(all, "general.sampling.top_k"));
    CHECK(*find_kv(all, "general.sampling.top_k")->get_if<int32_t>() == 20);
    CHECK(*find_kv(all, "general.sampling.penalty_last_n")->get_if<int32_t>() == -1);
    CHECK(*find_kv(all, "general.sampling.mirostat")->get_if<int32_t>() == 2);
    CHECK(*find_kv(all, "general.sampling.penalty_repeat")->get_if<float>() ==
          doctest::Approx(1.1f));  // llama.cpp's name wins
    CHECK(*find_kv(all, "general.sampling.sequence")->get_if<std::string>() == "kpt");

    notes.clear();
    const auto hf = sampling_metadata_from_json(R"({"repetition_penalty": 1.05, "top_k": 20})", "gc.json", &notes);
    REQUIRE(find_kv(hf, "general.sampling.penalty_repeat"));
    CHECK(*find_kv(hf, "general.sampling.penalty_repeat")->get_if<float>() == doctest::Approx(1.05f));
}

TEST_CASE("generation_config: bad values and bad files are left out with a note, never an error") {
    std::vector<std::string> notes;
    auto kvs = sampling_metadata_from_json(
        R"({"top_k": 2.5, "top_p": "high", "temperature": -1, "min_p": null, "mirostat": 7, "sequence": 3,
            "penalty_last_n": 64})",
        "gc.json", &notes);
    REQUIRE(kvs.size() == 1);
    CHECK(kvs[0].key == "general.sampling.penalty_last_n");
    CHECK(mentions(notes, "gc.json: \"top_k\" is not an integer"));
    CHECK(mentions(notes, "\"top_p\" is not a number"));
    CHECK(mentions(notes, "\"temperature\" is out of range"));
    CHECK(mentions(notes, "\"mirostat\" is out of range"));
    CHECK(mentions(notes, "\"sequence\" is not a string"));
    CHECK(notes.size() == 5);  // null is simply absent

    for (const char* text : {"{\"temperature\": 0.6", "[0.6]", "", "\"x\""}) {
        notes.clear();
        CHECK(sampling_metadata_from_json(text, "gc.json", &notes).empty());
        CHECK(mentions(notes, "gc.json: not a JSON object"));
    }
}

TEST_CASE("convert: generation_config.json lands in the file as general.sampling.*; a broken one is noted") {
    TempDir tmp;
    const TinyQwen2 m;
    write_checkpoint(tmp / "ckpt", tiny_qwen2_config(m), tiny_qwen2_tensors(m));
    write_text(tmp / "ckpt" / "generation_config.json", R"({"do_sample": true, "temperature": 0.7, "top_p": 0.8,
        "top_k": 20, "repetition_penalty": 1.05})");
    ConvertReport r = convert_checkpoint((tmp / "ckpt").string(), (tmp / "m.gguf").string(), options_for("q8_0"));
    {
        auto f = GgufFile::open((tmp / "m.gguf").string());
        CHECK(f->get_f32("general.sampling.temp") == doctest::Approx(0.7f));
        CHECK(f->get_f32("general.sampling.top_p") == doctest::Approx(0.8f));
        CHECK(f->get_i64("general.sampling.top_k") == 20);
        CHECK(f->get_f32("general.sampling.penalty_repeat") == doctest::Approx(1.05f));
        CHECK_FALSE(f->has("general.sampling.min_p"));
    }
    write_text(tmp / "ckpt" / "generation_config.json", "{ not json");
    r = convert_checkpoint((tmp / "ckpt").string(), (tmp / "m2.gguf").string(), options_for("q8_0"));
    CHECK(mentions(r.notes, "generation_config.json: not a JSON object"));
    CHECK_FALSE(GgufFile::open((tmp / "m2.gguf").string())->has("general.sampling.temp"));
}

TEST_CASE("sampling metadata: the file's settings over the defaults; odd values skipped, not fatal") {
    TempDir tmp;
    const fs::path path = tmp / "s.gguf";
    {
        GgufWriter w(path.string());
        w.add("general.sampling.temp", GgufValue(0.25f));
        w.add("general.sampling.top_k", GgufValue(uint32_t(7)));  // any number type is read
        w.add("general.sampling.top_p", GgufValue("0.5"));        // not a number: skipped
        w.add("general.sampling.min_p", GgufValue(2.0f));         // out of range: skipped
        w.add("general.sampling.penalty_last_n", GgufValue(int32_t(-1)));
        w.add("general.sampling.penalty_repeat", GgufValue(1.25));  // f64
        w.add("general.sampling.mirostat", GgufValue(int32_t(2)));  // no counterpart here
        w.finish();
    }
    auto f = GgufFile::open(path.string());
    SamplerParams p = SamplerParams::deepseek_r1();
    const auto applied = apply_sampling_metadata(*f, 2048, &p);
    CHECK(applied.size() == 4);
    CHECK(p.temperature == doctest::Approx(0.25f));
    CHECK(p.top_k == 7);
    CHECK(p.top_p == doctest::Approx(SamplerParams::deepseek_r1().top_p));
    CHECK(p.min_p == doctest::Approx(SamplerParams::deepseek_r1().min_p));
    CHECK(p.penalty_last_n == 2048);
    CHECK(p.repeat_penalty == doctest::Approx(1.25f));

    SamplerParams untouched;
    {
        GgufWriter w((tmp / "none.gguf").string());
        w.add("general.name", GgufValue("x"));
        w.finish();
    }
    CHECK(apply_sampling_metadata(*GgufFile::open((tmp / "none.gguf").string()), 2048, &untouched).empty());
    CHECK(untouched.temperature == doctest::Approx(SamplerParams().temperature));
}
