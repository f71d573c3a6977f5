// The deepseek2 forward pass (MLA + MoE) on small random models: batch and
// one-by-one evaluation agree, the absorbed and expanded attention forms agree
// on the same weights, and the cache holds only the latent.
#include <doctest/doctest.h>

#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "models/model.h"
#include "models/session.h"
#include "models/synth.h"
#include "quant/quant.h"
#include "tests/test_util.h"
#include "tests/tiny_models.h"

using namespace moelite;

namespace {

HParams tiny_deepseek(bool v3) {
    HParams hp = test::tiny_deepseek2_hparams();
    hp.n_ctx_train = 256;
    hp.q_lora_rank = v3 ? 48 : 0;
    hp.n_expert_shared = v3 ? 1 : 2;
    hp.expert_gating = v3 ? ExpertGating::Sigmoid : ExpertGating::Softmax;
    hp.expert_weights_norm = v3;
    hp.expert_weights_scale = v3 ? 2.5f : 1.0f;
    hp.n_expert_groups = v3 ? 4 : 1;
    hp.n_expert_groups_used = v3 ? 2 : 1;
    hp.rope_scaling = RopeScaling::Yarn;
    hp.rope_scaling_factor = 40.0f;
    hp.rope_orig_ctx = 64;
    hp.rope_yarn_log_mul = 0.1f;
    return hp;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    float m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

std::vector<float> run(const std::string& path, const std::vector<int32_t>& toks, bool one_by_one, DType cache,
                       int64_t* cache_bytes_per_token = nullptr) {
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto model = Model::load(path, cpu);
    Session s(model, cpu, SessionOptions{64, 512, cache});
    if (cache_bytes_per_token) *cache_bytes_per_token = int64_t(s.cache().bytes_per_token());
    return test::eval_logits(s, toks, one_by_one);
}

// Rewrites an unsplit-kv_b file into the split layout llama.cpp writes:
// kv_b [kv_lora, H * (nope + v)] -> k_b [nope, kv_lora, H] (transposed per
// head) and v_b [kv_lora, v, H]. F32 weights only.
void split_kv_b(const std::string& in_path, const std::string& out_path, const HParams& hp) {
    auto f = GgufFile::open(in_path);
    GgufWriter w(out_path);
    for (const auto& kv : f->metadata()) w.add(kv.key, kv.value);
    const int64_t H = hp.n_head, nope = hp.qk_nope_dim(), v = hp.v_head_dim(), L = hp.kv_lora_rank;
    std::vector<std::vector<float>> data;
    for (const auto& t : f->tensors()) {
        if (t.name.find("attn_kv_b") == std::string::npos) {
            w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims));
            continue;
        }
        REQUIRE(t.type == DType::F32);
        const std::string layer = t.name.substr(0, t.name.find(".attn_kv_b"));
        w.add_tensor(layer + ".attn_k_b.weight", DType::F32, {nope, L, H});
        w.add_tensor(layer + ".attn_v_b.weight", DType::F32, {L, v, H});
    }
    for (const auto& t : f->tensors()) {
        if (t.name.find("attn_kv_b") == std::string::npos) {
            w.append_tensor_data(t.data, t.nbytes);
            continue;
        }
        const float* kvb = reinterpret_cast<const float*>(t.data);  // row r = h * (nope + v) + i, L columns
        std::vector<float> kb(size_t(nope * L * H)), vb(size_t(L * v * H));
        for (int64_t h = 0; h < H; ++h)
            for (int64_t c = 0; c < L; ++c) {
                for (int64_t i = 0; i < nope; ++i) kb[size_t((h * L + c) * nope + i)] = kvb[(h * (nope + v) + i) * L + c];
                for (int64_t i = 0; i < v; ++i) vb[size_t((h * v + i) * L + c)] = kvb[(h * (nope + v) + nope + i) * L + c];
            }
        w.append_tensor_data(kb.data(), kb.size() * 4);
        w.append_tensor_data(vb.data(), vb.size() * 4);
    }
    w.finish();
}

}  // namespace

TEST_CASE("deepseek2: batch and one-by-one agree (V3-style: q LoRA, sigmoid, groups, bias; V2-Lite-style)") {
    for (bool v3 : {true, false}) {
        test::TempDir dir;
        const std::string path = (dir / "ds.gguf").string();
        HParams hp = tiny_deepseek(v3);
        synth_write_model(path, hp, synth_type(DType::F32));
        const std::vector<int32_t> toks = {1, 5, 9, 2, 33, 63, 0, 7, 7, 12, 40, 41};
        int64_t bpt = 0;
        auto batch = run(path, toks, false, DType::F32, &bpt);
        auto single = run(path, toks, true, DType::F32);
        CHECK(max_abs_diff(batch, single) < 1e-4f);
        // The cache holds the latent and the RoPE key only: (32 + 16) values per layer.
        CHECK(bpt == 3 * (32 + 16) * 4);
        float range = 0;
        for (float x : batch) {
            REQUIRE(std::isfinite(x));
            range = std::max(range, std::abs(x));
        }
        CHECK(range > 0.1f);
        {
            // Expert statistics: every token of every MoE layer chose k experts.
            CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
            auto model = Model::load(path, cpu);
            Session s(model, cpu, SessionOptions{64, 5, DType::F32});
            s.eval(toks, false, nullptr);
            const ExpertStats& es = s.expert_stats();
            REQUIRE(es.n_layer() == hp.n_layer);
            for (int64_t l = 0; l < hp.n_layer; ++l) {
                uint64_t total = 0;
                int64_t latest = -1;
                for (int64_t e = 0; e < hp.n_expert; ++e) {
                    total += es.count(l, e);
                    latest = std::max(latest, es.last_used(l, e));
                }
                CHECK(total == (hp.layer_is_moe(l) ? uint64_t(toks.size() * hp.n_expert_used) : 0));
                CHECK(latest == (hp.layer_is_moe(l) ? int64_t(toks.size()) - 1 : -1));
            }
        }
        auto f16 = run(path, toks, false, DType::F16);
        CHECK(max_abs_diff(batch, f16) < 2e-2f * range);
    }
}

TEST_CASE("deepseek2: absorbed (attn_k_b/attn_v_b) and expanded (attn_kv_b) attention agree") {
    test::TempDir dir;
    HParams hp = tiny_deepseek(true);
    SynthOptions so;
    so.type = DType::F32;
    so.mla_unsplit_kv_b = true;
    const std::string unsplit = (dir / "unsplit.gguf").string(), split = (dir / "split.gguf").string();
    synth_write_model(unsplit, hp, so);
    split_kv_b(unsplit, split, hp);
    const std::vector<int32_t> toks = {3, 1, 4, 1, 5, 9, 2, 6};
    auto expanded = run(unsplit, toks, false, DType::F32);
    auto absorbed = run(split, toks, false, DType::F32);
    CHECK(max_abs_diff(expanded, absorbed) < 1e-4f);
    auto absorbed_single = run(split, toks, true, DType::F32);
    CHECK(max_abs_diff(expanded, absorbed_single) < 1e-4f);
}
