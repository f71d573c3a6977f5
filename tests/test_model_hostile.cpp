// Model files that parse as GGUF but lie: metadata out of range or at odds
// with the experts, non-finite settings, tensors of the wrong type, weights
// that compute NaN, templates that fail. Each must give one error naming the
// file and the problem, at load or at the first turn, never an assertion, a
// huge allocation or silent garbage.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "models/chat.h"
#include "models/generate.h"
#include "models/kv_cache.h"
#include "models/model.h"
#include "models/session.h"
#include "models/synth.h"
#include "tests/test_util.h"
#include "tests/tiny_models.h"

using namespace moelite;

namespace {

// Copies the GGUF at `src` to `dst` with the metadata in `set` replacing (or
// added to) the file's, and each tensor's bytes passed through `edit` when given.
void rewrite(const std::string& src, const std::string& dst, const std::map<std::string, GgufValue>& set,
             const std::function<void(const GgufTensorInfo&, std::vector<uint8_t>&)>& edit = nullptr) {
    auto f = GgufFile::open(src);
    GgufWriter w(dst);
    for (const GgufKV& kv : f->metadata()) {
        auto it = set.find(kv.key);
        w.add(kv.key, it != set.end() ? it->second : kv.value);
    }
    for (const auto& [key, value] : set)
        if (!f->has(key)) w.add(key, value);
    for (const GgufTensorInfo& t : f->tensors())
        w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims));
    for (const GgufTensorInfo& t : f->tensors()) {
        std::vector<uint8_t> bytes(t.data, t.data + t.nbytes);
        if (edit) edit(t, bytes);
        w.write_tensor(t.name, bytes.data(), bytes.size());
    }
    w.finish();
}

// Model::load's error for the file, or "" when it loads.
std::string load_error(const std::string& path) {
    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    try {
        Model::load(path, cpu);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// A tiny qwen2 model with the demo tokenizer (and `chat_template` when given).
void write_chat_model(const std::string& path, const std::string& chat_template = "") {
    SynthOptions o = synth_type(DType::F32);
    o.tokenizer = synth_demo_tokenizer();
    if (!chat_template.empty()) o.tokenizer->chat_template = chat_template;
    synth_write_model(path, test::tiny_dense_hparams(Arch::Qwen2, 512), o);
}

HParams v3_like() {
    HParams hp = test::tiny_deepseek2_hparams();
    hp.expert_gating = ExpertGating::Sigmoid;
    hp.n_expert_groups = 4;
    hp.n_expert_groups_used = 2;
    return hp;
}

}  // namespace

TEST_CASE("hostile models: norms, biases and RoPE factors of another type than f32 are refused at load") {
    test::TempDir dir;
    for (const char* name : {"blk.0.attn_norm.weight", "output_norm.weight", "blk.1.attn_k.bias"}) {
        const std::string path = (dir / "norm.gguf").string();
        SynthOptions o;
        o.type = DType::F32;
        o.tensor_type = [&](const std::string& n, const std::vector<int64_t>&) {
            return n == name ? DType::Q8_0 : DType::F32;
        };
        synth_write_model(path, test::tiny_dense_hparams(Arch::Qwen2), o);
        const std::string err = load_error(path);
        INFO(name << ": " << err);
        CHECK(err.find(path) != std::string::npos);
        CHECK(err.find(std::string("'") + name + "' has type q8_0") != std::string::npos);
        CHECK(err.find("must be f32") != std::string::npos);
    }
}

TEST_CASE("hostile models: metadata out of range gives one error naming the file and the key") {
    test::TempDir dir;
    const std::string dense = (dir / "dense.gguf").string(), moe = (dir / "moe.gguf").string(),
                      v3 = (dir / "v3.gguf").string(), bad = (dir / "bad.gguf").string();
    synth_write_model(dense, test::tiny_dense_hparams(Arch::Qwen2), synth_type(DType::F32));
    synth_write_model(moe, test::tiny_deepseek2_hparams(), synth_type(DType::F32));
    synth_write_model(v3, v3_like(), synth_type(DType::F32));
    CHECK(load_error(dense).empty());
    CHECK(load_error(moe).empty());
    CHECK(load_error(v3).empty());
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    struct Case {
        const std::string* src;
        std::map<std::string, GgufValue> set;
        const char* expect;
    };
    const std::vector<Case> cases = {
        // A block count the file's tensors cannot hold is refused before anything is sized by it.
        {&dense, {{"qwen2.block_count", GgufValue(uint32_t(1) << 30)}}, "block_count 1073741824 is more than"},
        {&dense, {{"qwen2.rope.freq_base", GgufValue(inf)}}, "'qwen2.rope.freq_base' = inf is not a finite number"},
        {&dense,
         {{"qwen2.rope.scaling.type", GgufValue("linear")}, {"qwen2.rope.scaling.factor", GgufValue(1e30f)}},
         "'qwen2.rope.scaling.factor' = 1e+30 is out of range"},
        {&dense,
         {{"qwen2.rope.scaling.type", GgufValue("yarn")},
          {"qwen2.rope.scaling.factor", GgufValue(4.0f)},
          {"qwen2.rope.scaling.original_context_length", GgufValue(uint32_t(0))}},
         "original_context_length must be positive"},
        {&dense,
         {{"qwen2.attention.head_count", GgufValue(uint32_t(128))},
          {"qwen2.attention.head_count_kv", GgufValue(uint32_t(128))}},
         "head_count (128) does not divide embedding_length (64)"},
        {&dense,
         {{"tokenizer.ggml.model", GgufValue("gpt2")},
          {"tokenizer.ggml.tokens", GgufValue(std::vector<std::string>{})}},
         "tokenizer.ggml.tokens is empty"},
        {&moe,
         {{"deepseek2.expert_weights_scale", GgufValue(nan)}},
         "expert_weights_scale' = nan is not a finite number"},
        {&moe,
         {{"deepseek2.rope.scaling.type", GgufValue("yarn")},
          {"deepseek2.rope.scaling.factor", GgufValue(40.0f)},
          {"deepseek2.rope.scaling.yarn_log_multiplier", GgufValue(1e30f)}},
         "yarn_log_multiplier' = 1e+30 is out of range"},
        // Sigmoid gating ranks groups by their two best experts.
        {&v3,
         {{"deepseek2.expert_group_count", GgufValue(uint32_t(16))},
          {"deepseek2.expert_group_used_count", GgufValue(uint32_t(1))}},
         "leaves 1 expert per group"},
        // 4 experts to choose among the 2 of one kept group.
        {&v3,
         {{"deepseek2.expert_group_count", GgufValue(uint32_t(8))},
          {"deepseek2.expert_group_used_count", GgufValue(uint32_t(1))}},
         "expert_used_count 4 is more than the 2 experts of the 1 groups kept"},
    };
    for (const Case& c : cases) {
        rewrite(*c.src, bad, c.set);
        const std::string err = load_error(bad);
        INFO("expected '" << c.expect << "', got: " << err);
        CHECK(err.find(bad) != std::string::npos);
        CHECK(err.find(c.expect) != std::string::npos);
    }
}

TEST_CASE("hostile models: token types past int32 are refused, not truncated") {
    test::TempDir dir;
    const std::string path = (dir / "m.gguf").string(), bad = (dir / "bad.gguf").string();
    write_chat_model(path);
    CHECK(load_error(path).empty());
    auto f = GgufFile::open(path);
    const size_t n = f->get_array<std::string>("tokenizer.ggml.tokens").size();
    std::vector<uint64_t> types(n, 1);
    types[3] = (uint64_t(1) << 32) + 1;  // 1 once cut to 32 bits
    rewrite(path, bad, {{"tokenizer.ggml.token_type", GgufValue(types)}});
    const std::string err = load_error(bad);
    INFO(err);
    CHECK(err.find("token_type holds 4294967297") != std::string::npos);
}

TEST_CASE("hostile models: NaN logits stop generation with an error; so does a prompt longer than the context") {
    test::TempDir dir;
    const std::string path = (dir / "m.gguf").string();
    write_chat_model(path);
    // NaN weights: the final norm's, and the first layer's q projection
    // (attention's softmax used to turn the NaN scores into a masked row).
    std::vector<std::string> files = {path};
    for (const char* name : {"output_norm.weight", "blk.0.attn_q.weight"}) {
        files.push_back((dir / (std::string(name) + ".gguf")).string());
        rewrite(path, files.back(), {}, [&](const GgufTensorInfo& t, std::vector<uint8_t>& bytes) {
            if (t.name != name) return;
            const float nan = std::numeric_limits<float>::quiet_NaN();
            for (size_t i = 0; i + 4 <= bytes.size(); i += 4) std::memcpy(bytes.data() + i, &nan, 4);
        });
    }
    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    for (const std::string& file : files) {
        auto model = Model::load(file, cpu);
        Session s(model, cpu, SessionOptions{64, 512, DType::F16});
        Sampler sampler(SamplerParams{});
        const std::vector<int32_t> prompt = model->tokenizer()->encode("hello", false, true);
        GenerateOptions go;
        go.max_tokens = 2;
        if (file == path) {
            CHECK(generate(s, sampler, *model->tokenizer(), prompt, go, nullptr).tokens.size() == 2);
        } else {
            INFO(file);
            CHECK_THROWS_WITH_AS(generate(s, sampler, *model->tokenizer(), prompt, go, nullptr),
                                 doctest::Contains("NaN logits"), Error);
        }
    }

    std::string out;
    const std::string cmd = test::moelite_binary().string() + " run -m '" + path +
                            "' -p 'hello world hello world hello world' -c 8 -n 2 2>&1";
    CHECK(test::run_command(cmd, &out) != 0);
    INFO(out);
    CHECK(out.find("the prompt does not fit the context of 8 tokens") != std::string::npos);
}

TEST_CASE("hostile models: a chat template that fails names the file, and is refused before the first turn") {
    test::TempDir dir;
    const std::string path = (dir / "m.gguf").string();
    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    const std::vector<std::pair<std::string, std::string>> templates = {
        {"{{ 1 / 0 }}", "chat template: line 1: division by zero"},
        {"{% if messages %}{{ raise_exception('roles must alternate') }}{% endif %}",
         "the chat template refused the conversation: roles must alternate"},
        {"{% for m in messages %}", "chat template:"},
    };
    for (const auto& [source, expect] : templates) {
        write_chat_model(path, source);
        auto model = Model::load(path, cpu);
        Session s(model, cpu, SessionOptions{64, 512, DType::F16});
        INFO(source);
        CHECK_THROWS_WITH_AS(Chat(s, *model->tokenizer(), model->chat_template(), SamplerParams{}),
                             doctest::Contains((path + ": " + expect).c_str()), Error);
    }
}

TEST_CASE("hostile models: a KV cache larger than memory is one error that names the cache and -c") {
    // 2^20-wide keys and values, 16384 heads, 4096 positions: 256 TiB in
    // f16, past x86-64's 128 TiB of user address space, so that no
    // overcommit setting lets the mapping succeed.
    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    const std::vector<KvLayerShape> layers(1, KvLayerShape{int64_t(1) << 20, int64_t(1) << 20, 16384});
    CHECK_THROWS_WITH_AS(KvCache(layers, 4096, DType::F16, cpu),
                         doctest::Contains("the KV cache (268435456.0 MiB for 4096 tokens) cannot be allocated"), Error);
}
