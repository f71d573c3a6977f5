#include "models/gguf_meta.h"

namespace moelite {

void write_model_metadata(GgufWriter& w, const HParams& hp, const std::string& name) {
    const std::string a = arch_name(hp.arch);
    auto key = [&](const char* k) { return a + "." + k; };
    auto u32 = [](int64_t v) { return uint32_t(v); };

    w.add("general.architecture", a);
    w.add("general.type", std::string("model"));
    w.add("general.name", name);
    w.add("general.quantization_version", uint32_t(2));
    w.add(key("vocab_size"), u32(hp.n_vocab));
    w.add(key("context_length"), u32(hp.n_ctx_train));
    w.add(key("embedding_length"), u32(hp.n_embd));
    w.add(key("feed_forward_length"), u32(hp.n_ff));
    // block_count includes multi-token-prediction layers when a file carries them.
    w.add(key("block_count"), u32(hp.n_layer + hp.n_layer_nextn));
    w.add(key("attention.head_count"), u32(hp.n_head));
    w.add(key("attention.head_count_kv"), u32(hp.n_head_kv));
    w.add(key("attention.layer_norm_rms_epsilon"), hp.rms_eps);
    w.add(key("rope.freq_base"), hp.rope_freq_base);
    w.add(key("rope.dimension_count"), u32(hp.n_rot));
    if (hp.head_dim_k != hp.n_embd / hp.n_head || hp.arch == Arch::Deepseek2) {
        w.add(key("attention.key_length"), u32(hp.head_dim_k));
        w.add(key("attention.value_length"), u32(hp.head_dim_v));
    }
    switch (hp.rope_scaling) {
        case RopeScaling::None:
        case RopeScaling::Llama3: break;  // llama3 scaling travels as the rope_freqs tensor
        case RopeScaling::Linear:
            w.add(key("rope.scaling.type"), std::string("linear"));
            w.add(key("rope.scaling.factor"), hp.rope_scaling_factor);
            break;
        case RopeScaling::Yarn:
            w.add(key("rope.scaling.type"), std::string("yarn"));
            w.add(key("rope.scaling.factor"), hp.rope_scaling_factor);
            w.add(key("rope.scaling.original_context_length"), u32(hp.rope_orig_ctx));
            if (hp.rope_yarn_log_mul != 0.0f) w.add(key("rope.scaling.yarn_log_multiplier"), hp.rope_yarn_log_mul);
            break;
    }
    if (hp.arch == Arch::Deepseek2) {
        w.add(key("leading_dense_block_count"), u32(hp.n_layer_dense_lead));
        // Written even when 0 (V2-Lite: a plain q projection): llama.cpp reads the
        // key unless the layer count is one of the known "lite" models', so a
        // V2-Lite cut to fewer layers would not load there without it.
        w.add(key("attention.q_lora_rank"), u32(hp.q_lora_rank));
        w.add(key("attention.kv_lora_rank"), u32(hp.kv_lora_rank));
        if (hp.is_mla()) {
            w.add(key("attention.key_length_mla"), u32(hp.head_dim_k_mla));
            w.add(key("attention.value_length_mla"), u32(hp.head_dim_v_mla));
        }
        w.add(key("expert_feed_forward_length"), u32(hp.n_ff_exp));
        w.add(key("expert_count"), u32(hp.n_expert));
        w.add(key("expert_used_count"), u32(hp.n_expert_used));
        w.add(key("expert_shared_count"), u32(hp.n_expert_shared));
        w.add(key("expert_weights_scale"), hp.expert_weights_scale);
        if (hp.expert_weights_norm) w.add(key("expert_weights_norm"), true);
        w.add(key("expert_gating_func"), uint32_t(hp.expert_gating));
        w.add(key("expert_group_count"), u32(hp.n_expert_groups));
        w.add(key("expert_group_used_count"), u32(hp.n_expert_groups_used));
        if (hp.n_layer_nextn) w.add(key("nextn_predict_layers"), u32(hp.n_layer_nextn));
    }
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

}  // namespace moelite
