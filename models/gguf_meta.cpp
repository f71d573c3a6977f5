#include "models/gguf_meta.h"

#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "core/log.h"

namespace moelite {

namespace {

class KvList {
  public:
    explicit KvList(const char* arch) : arch_(arch) {}
    template <class T>
    void general(const char* key, T v) {
        kv_.push_back({std::string("general.") + key, GgufValue(std::move(v))});
    }
    template <class T>
    void arch(const char* key, T v) {
        kv_.push_back({arch_ + "." + key, GgufValue(std::move(v))});
    }
    void u32(const char* key, int64_t v) {
        if (v < 0 || v > int64_t(UINT32_MAX))
            fail("%s.%s = %lld does not fit the 32-bit GGUF key", arch_.c_str(), key, (long long)v);
        arch(key, uint32_t(v));
    }
    std::vector<GgufKV> take() { return std::move(kv_); }

  private:
    std::string arch_;
    std::vector<GgufKV> kv_;
};

}  // namespace

std::vector<GgufKV> model_metadata(const HParams& hp, const ModelMetadataExtras& extras) {
    KvList kv(arch_name(hp.arch));
    kv.general("architecture", std::string(arch_name(hp.arch)));
    kv.general("type", std::string("model"));
    if (!extras.name.empty()) kv.general("name", extras.name);

    // TextModel.set_gguf_parameters
    kv.u32("block_count", hp.n_layer);
    kv.u32("context_length", hp.n_ctx_train);
    kv.u32("embedding_length", hp.n_embd);
    kv.u32("feed_forward_length", hp.n_ff);
    kv.u32("attention.head_count", hp.n_head);
    kv.u32("attention.head_count_kv", hp.n_head_kv);
    if (hp.rope_scaling == RopeScaling::Linear) {
        kv.arch("rope.scaling.type", std::string("linear"));
        kv.arch("rope.scaling.factor", hp.rope_scaling_factor);
    } else if (hp.rope_scaling == RopeScaling::Yarn) {
        kv.arch("rope.scaling.type", std::string("yarn"));
        kv.arch("rope.scaling.factor", hp.rope_scaling_factor);
        kv.u32("rope.scaling.original_context_length", hp.rope_orig_ctx);
        kv.arch("rope.scaling.yarn_beta_fast", hp.rope_yarn_beta_fast);
        kv.arch("rope.scaling.yarn_beta_slow", hp.rope_yarn_beta_slow);
    }
    kv.arch("rope.freq_base", hp.rope_freq_base);
    kv.arch("attention.layer_norm_rms_epsilon", hp.rms_eps);
    if (hp.arch == Arch::Deepseek2) {
        kv.u32("expert_count", hp.n_expert);
        kv.u32("expert_used_count", hp.n_expert_used);
        kv.u32("expert_group_count", hp.n_expert_groups);
        kv.u32("expert_group_used_count", hp.n_expert_groups_used);
        kv.arch("expert_gating_func", uint32_t(hp.expert_gating));
    }
    // An explicit head_dim (one that is not n_embd / n_head) is written as key/value length.
    if (hp.arch != Arch::Deepseek2 && hp.head_dim_k * hp.n_head != hp.n_embd) {
        kv.u32("attention.key_length", hp.head_dim_k);
        kv.u32("attention.value_length", hp.head_dim_v);
    }
    kv.general("file_type", extras.file_type);

    // Each family's additions.
    switch (hp.arch) {
        case Arch::Llama:
            kv.u32("vocab_size", hp.n_vocab);
            kv.u32("rope.dimension_count", hp.n_rot);
            break;
        case Arch::Qwen2:
            // llama.cpp writes no vocab_size for qwen2; a vocab-less file needs it.
            if (extras.vocab_less) kv.u32("vocab_size", hp.n_vocab);
            break;
        case Arch::Deepseek2:
            kv.u32("leading_dense_block_count", hp.n_layer_dense_lead);
            kv.u32("vocab_size", hp.n_vocab);
            // llama.cpp's converter leaves the key out for a plain q projection
            // (V2-Lite), and its loader then guesses "lite" from the layer count
            // (26 / 27 / 48): a V2-Lite-shaped model of any other depth would not
            // load. 0 says "no q LoRA" to both loaders whatever the depth.
            kv.u32("attention.q_lora_rank", hp.q_lora_rank);
            kv.u32("attention.kv_lora_rank", hp.kv_lora_rank);
            kv.u32("attention.key_length", hp.head_dim_k);
            kv.u32("attention.value_length", hp.head_dim_v);
            kv.u32("attention.key_length_mla", hp.head_dim_k_mla);
            kv.u32("attention.value_length_mla", hp.head_dim_v_mla);
            kv.u32("expert_feed_forward_length", hp.n_ff_exp);
            kv.u32("expert_shared_count", hp.n_expert_shared);
            kv.arch("expert_weights_scale", hp.expert_weights_scale);
            if (hp.expert_weights_norm) kv.arch("expert_weights_norm", true);
            kv.u32("rope.dimension_count", hp.n_rot);
            // llama.cpp stores 0.1 * mscale_all_dim here for deepseek2 (a legacy of
            // its YaRN code; the runtime turns it back into the attention factor).
            if (hp.rope_scaling == RopeScaling::Yarn && hp.rope_yarn_log_mul != 0.0f)
                kv.arch("rope.scaling.yarn_log_multiplier", hp.rope_yarn_log_mul);
            break;
    }
    kv.general("quantization_version", uint32_t(2));
    return kv.take();
}

void write_tokenizer_metadata(GgufWriter& w, const TokenizerMetadata& t) {
    w.add("tokenizer.ggml.model", t.model);
    if (!t.pre.empty()) w.add("tokenizer.ggml.pre", t.pre);
    w.add("tokenizer.ggml.tokens", t.tokens);
    if (!t.token_types.empty()) w.add("tokenizer.ggml.token_type", t.token_types);
    w.add("tokenizer.ggml.merges", t.merges);
    auto id = [&](const char* key, int32_t v) {
        if (v >= 0) w.add(key, uint32_t(v));
    };
    id("tokenizer.ggml.bos_token_id", t.bos_id);
    id("tokenizer.ggml.eos_token_id", t.eos_id);
    id("tokenizer.ggml.eot_token_id", t.eot_id);
    id("tokenizer.ggml.padding_token_id", t.pad_id);
    if (t.add_bos) w.add("tokenizer.ggml.add_bos_token", *t.add_bos);
    if (t.add_eos) w.add("tokenizer.ggml.add_eos_token", *t.add_eos);
    if (!t.chat_template.empty()) w.add("tokenizer.chat_template", t.chat_template);
}

namespace {

// A numeric metadata value as a double, whatever its GGUF number type.
std::optional<double> number_of(const GgufValue& v) {
    return v.visit([](const auto& x) -> std::optional<double> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_arithmetic_v<T>) return double(x);
        return std::nullopt;
    });
}

}  // namespace

std::vector<std::string> apply_sampling_metadata(const GgufFile& file, int64_t n_ctx, SamplerParams* p) {
    std::vector<std::string> applied;
    // ok(v): whether v is in range; set(v): stores it.
    auto take = [&](const char* key, auto ok, auto set) {
        const GgufValue* v = file.find(key);
        if (!v) return;
        const std::optional<double> x = number_of(*v);
        if (!x || !std::isfinite(*x) || !ok(*x)) {
            MOELITE_LOG_WARN("%s: %s is not a usable number; ignored", file.path().c_str(), key);
            return;
        }
        set(*x);
        applied.emplace_back(key);
    };
    auto integral = [](double x) { return x == std::floor(x) && std::fabs(x) < 2e9; };
    take(
        sampling_key::kTemp, [](double x) { return x >= 0.0; }, [&](double x) { p->temperature = float(x); });
    take(
        sampling_key::kTopK, [&](double x) { return integral(x) && x >= 0.0; },
        [&](double x) { p->top_k = int32_t(x); });
    take(
        sampling_key::kTopP, [](double x) { return x > 0.0 && x <= 1.0; }, [&](double x) { p->top_p = float(x); });
    take(
        sampling_key::kMinP, [](double x) { return x >= 0.0 && x <= 1.0; }, [&](double x) { p->min_p = float(x); });
    take(
        sampling_key::kPenaltyRepeat, [](double x) { return x > 0.0; },
        [&](double x) { p->repeat_penalty = float(x); });
    take(
        sampling_key::kPenaltyLastN, [&](double x) { return integral(x) && x >= -1.0; },
        [&](double x) { p->penalty_last_n = x < 0 ? int32_t(std::min<int64_t>(n_ctx, INT32_MAX)) : int32_t(x); });
    return applied;
}

}  // namespace moelite
