#include "convert/hf_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace moelite {
namespace {

using json = nlohmann::json;

class ConfigReader {
public:
    ConfigReader(const json& j, const std::string& name) : j_(j), name_(name) {}

    bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

    int64_t integer(const char* key) const {
        if (!has(key)) fail("%s: missing required key '%s'", name_.c_str(), key);
        return integer_of(j_.at(key), key);
    }
    int64_t integer(const char* key, int64_t fallback) const { return has(key) ? integer_of(j_.at(key), key) : fallback; }

    double number(const char* key, double fallback) const {
        if (!has(key)) return fallback;
        const json& v = j_.at(key);
        if (!v.is_number()) fail("%s: key '%s' must be a number", name_.c_str(), key);
        return v.get<double>();
    }

    bool boolean(const char* key, bool fallback) const {
        if (!has(key)) return fallback;
        const json& v = j_.at(key);
        if (!v.is_boolean()) fail("%s: key '%s' must be true or false", name_.c_str(), key);
        return v.get<bool>();
    }

    std::string string(const char* key, const std::string& fallback) const {
        if (!has(key)) return fallback;
        const json& v = j_.at(key);
        if (!v.is_string()) fail("%s: key '%s' must be a string", name_.c_str(), key);
        return v.get<std::string>();
    }

    const json& raw() const { return j_; }
    const std::string& name() const { return name_; }

private:
    int64_t integer_of(const json& v, const char* key) const {
        if (v.is_number_integer()) return v.get<int64_t>();
        if (v.is_number_float()) {
            double d = v.get<double>();
            if (d == double(int64_t(d))) return int64_t(d);
        }
        fail("%s: key '%s' must be an integer", name_.c_str(), key);
    }

    const json& j_;
    const std::string& name_;
};

// Counts and sizes: positive and within the loader's bounds (models/arch.h).
int64_t positive(const ConfigReader& r, const char* key, int64_t v, int64_t limit = kMaxHParamCount) {
    if (v <= 0 || v > limit) fail("%s: key '%s' = %lld is out of range", r.name().c_str(), key, (long long)v);
    return v;
}

void read_rope_scaling(const ConfigReader& r, HfConfig& c) {
    const char* key = r.has("rope_scaling") ? "rope_scaling" : (r.has("rope_parameters") ? "rope_parameters" : nullptr);
    if (!key) return;
    const json& rs = r.raw().at(key);
    if (!rs.is_object()) fail("%s: '%s' must be an object", r.name().c_str(), key);
    ConfigReader s(rs, r.name());
    std::string type = s.string("rope_type", s.string("type", ""));
    if (type.empty() || type == "default") return;
    if (type == "llama3") {
        Llama3RopeFactors f;
        f.factor = float(s.number("factor", f.factor));
        f.low_freq_factor = float(s.number("low_freq_factor", f.low_freq_factor));
        f.high_freq_factor = float(s.number("high_freq_factor", f.high_freq_factor));
        f.original_context = s.integer("original_max_position_embeddings", f.original_context);
        if (f.factor <= 0 || f.low_freq_factor <= 0 || f.high_freq_factor <= f.low_freq_factor || f.original_context <= 0)
            fail("%s: rope_scaling (llama3) has inconsistent factors", r.name().c_str());
        c.llama3_rope = f;
        c.hp.rope_scaling = RopeScaling::Llama3;
        return;
    }
    if (type == "yarn") {
        c.hp.rope_scaling = RopeScaling::Yarn;
        c.hp.rope_scaling_factor = float(s.number("factor", 1.0));
        c.hp.rope_orig_ctx = positive(r, "rope_scaling.original_max_position_embeddings",
                                      s.integer("original_max_position_embeddings", c.hp.n_ctx_train));
        c.yarn_mscale = float(s.number("mscale", 1.0));
        c.yarn_mscale_all_dim = float(s.number("mscale_all_dim", 0.0));
        c.hp.rope_yarn_beta_fast = float(s.number("beta_fast", 32.0));
        c.hp.rope_yarn_beta_slow = float(s.number("beta_slow", 1.0));
        // llama.cpp stores 0.1 * mscale_all_dim under yarn_log_multiplier for deepseek2.
        c.hp.rope_yarn_log_mul = 0.1f * c.yarn_mscale_all_dim;
        if (c.hp.rope_scaling_factor <= 0) fail("%s: rope_scaling.factor must be positive", r.name().c_str());
        return;
    }
    if (type == "linear") {
        if (!s.has("factor")) fail("%s: rope_scaling (linear) has no factor", r.name().c_str());
        c.hp.rope_scaling = RopeScaling::Linear;
        c.hp.rope_scaling_factor = float(s.number("factor", 1.0));
        if (c.hp.rope_scaling_factor <= 0) fail("%s: rope_scaling.factor must be positive", r.name().c_str());
        return;
    }
    fail("%s: unsupported rope scaling type '%s'", r.name().c_str(), type.c_str());
}

void read_dense(const ConfigReader& r, HfConfig& c) {
    HParams& hp = c.hp;
    hp.n_vocab = positive(r, "vocab_size", r.integer("vocab_size"), kMaxVocab);
    hp.n_embd = positive(r, "hidden_size", r.integer("hidden_size"));
    hp.n_ff = positive(r, "intermediate_size", r.integer("intermediate_size"));
    hp.n_layer = positive(r, "num_hidden_layers", r.integer("num_hidden_layers"));
    hp.n_head = positive(r, "num_attention_heads", r.integer("num_attention_heads"));
    hp.n_head_kv = positive(r, "num_key_value_heads", r.integer("num_key_value_heads", hp.n_head));
    if (hp.n_head % hp.n_head_kv != 0)
        fail("%s: num_attention_heads (%lld) is not a multiple of num_key_value_heads (%lld)", r.name().c_str(),
             (long long)hp.n_head, (long long)hp.n_head_kv);
    if (r.has("head_dim")) {
        hp.head_dim_k = positive(r, "head_dim", r.integer("head_dim"));
    } else {
        if (hp.n_embd % hp.n_head != 0)
            fail("%s: hidden_size is not a multiple of num_attention_heads", r.name().c_str());
        hp.head_dim_k = hp.n_embd / hp.n_head;
    }
    hp.head_dim_v = hp.head_dim_k;
    hp.n_rot = hp.head_dim_k;
    hp.n_ctx_train = positive(r, "max_position_embeddings", r.integer("max_position_embeddings", 4096));
    hp.rms_eps = float(r.number("rms_norm_eps", 1e-6));
    hp.rope_freq_base = float(r.number("rope_theta", 10000.0));
    hp.tied_embeddings = r.boolean("tie_word_embeddings", false);
    c.n_layer_all = hp.n_layer;
}

void read_deepseek(const ConfigReader& r, HfConfig& c, bool v3) {
    HParams& hp = c.hp;
    hp.n_vocab = positive(r, "vocab_size", r.integer("vocab_size"), kMaxVocab);
    hp.n_embd = positive(r, "hidden_size", r.integer("hidden_size"));
    hp.n_ff = positive(r, "intermediate_size", r.integer("intermediate_size"));
    hp.n_layer = positive(r, "num_hidden_layers", r.integer("num_hidden_layers"));
    hp.n_head = positive(r, "num_attention_heads", r.integer("num_attention_heads"));
    hp.n_head_kv = 1;  // MLA is stored as one shared latent "head", as llama.cpp does
    hp.n_ctx_train = positive(r, "max_position_embeddings", r.integer("max_position_embeddings", 4096));
    // DeepSeek's reference uses 1e-6 whatever the config says; configs say 1e-6 too.
    hp.rms_eps = float(r.number("rms_norm_eps", 1e-6));
    hp.rope_freq_base = float(r.number("rope_theta", 10000.0));
    hp.tied_embeddings = r.boolean("tie_word_embeddings", false);

    hp.q_lora_rank = r.has("q_lora_rank") ? positive(r, "q_lora_rank", r.integer("q_lora_rank")) : 0;
    hp.kv_lora_rank = positive(r, "kv_lora_rank", r.integer("kv_lora_rank"));
    const int64_t nope = positive(r, "qk_nope_head_dim", r.integer("qk_nope_head_dim"));
    const int64_t rope = positive(r, "qk_rope_head_dim", r.integer("qk_rope_head_dim"));
    const int64_t v = positive(r, "v_head_dim", r.integer("v_head_dim"));
    if (rope % 2 != 0) fail("%s: qk_rope_head_dim must be even", r.name().c_str());
    hp.n_rot = rope;
    hp.head_dim_k_mla = nope + rope;
    hp.head_dim_v_mla = v;
    // The latent "MQA" view llama.cpp stores as key/value length.
    hp.head_dim_k = hp.kv_lora_rank + rope;
    hp.head_dim_v = hp.kv_lora_rank;

    hp.n_expert = positive(r, "n_routed_experts", r.integer("n_routed_experts"));
    hp.n_expert_used = positive(r, "num_experts_per_tok", r.integer("num_experts_per_tok"));
    if (hp.n_expert_used > hp.n_expert) fail("%s: num_experts_per_tok exceeds n_routed_experts", r.name().c_str());
    hp.n_expert_shared = r.integer("n_shared_experts", 0);
    if (hp.n_expert_shared < 0) fail("%s: n_shared_experts is negative", r.name().c_str());
    hp.n_ff_exp = positive(r, "moe_intermediate_size", r.integer("moe_intermediate_size"));
    hp.n_layer_dense_lead = r.integer("first_k_dense_replace", 0);
    if (hp.n_layer_dense_lead < 0 || hp.n_layer_dense_lead > hp.n_layer)
        fail("%s: first_k_dense_replace is out of range", r.name().c_str());
    if (r.integer("moe_layer_freq", 1) != 1) fail("%s: moe_layer_freq other than 1 is not supported", r.name().c_str());
    hp.expert_weights_scale = float(r.number("routed_scaling_factor", 1.0));
    hp.expert_weights_norm = r.boolean("norm_topk_prob", false);
    const std::string scoring = r.string("scoring_func", "softmax");
    if (scoring == "softmax") {
        hp.expert_gating = ExpertGating::Softmax;
    } else if (scoring == "sigmoid") {
        hp.expert_gating = ExpertGating::Sigmoid;
    } else {
        fail("%s: unsupported scoring_func '%s'", r.name().c_str(), scoring.c_str());
    }
    // How experts are chosen follows from scoring_func and the groups; a
    // method of another kind would be converted into the wrong routing.
    const std::string topk_method = r.string("topk_method", "greedy");
    if (topk_method != "greedy" && topk_method != "group_limited_greedy" && topk_method != "noaux_tc")
        fail("%s: unsupported topk_method '%s'", r.name().c_str(), topk_method.c_str());
    hp.n_expert_groups = r.integer("n_group", 1);
    hp.n_expert_groups_used = r.integer("topk_group", 1);
    if (hp.n_expert_groups <= 0 || hp.n_expert % hp.n_expert_groups != 0 || hp.n_expert_groups_used <= 0 ||
        hp.n_expert_groups_used > hp.n_expert_groups)
        fail("%s: n_group / topk_group do not divide the experts", r.name().c_str());
    hp.n_layer_nextn = v3 ? r.integer("num_nextn_predict_layers", 0) : 0;
    if (hp.n_layer_nextn < 0) fail("%s: num_nextn_predict_layers is negative", r.name().c_str());
    c.n_layer_all = hp.n_layer + hp.n_layer_nextn;

    if (r.has("quantization_config")) {
        const json& q = r.raw().at("quantization_config");
        if (!q.is_object()) fail("%s: quantization_config must be an object", r.name().c_str());
        ConfigReader qr(q, r.name());
        const std::string method = qr.string("quant_method", "");
        if (method != "fp8") fail("%s: unsupported quantization_config.quant_method '%s'", r.name().c_str(), method.c_str());
        const json& bs = q.contains("weight_block_size") ? q.at("weight_block_size") : json();
        if (!bs.is_array() || bs.size() != 2 || !bs[0].is_number_integer() || !bs[1].is_number_integer() ||
            bs[0].get<int64_t>() <= 0 || bs[1].get<int64_t>() <= 0)
            fail("%s: quantization_config.weight_block_size must be two positive integers", r.name().c_str());
        c.fp8_block_rows = bs[0].get<int64_t>();
        c.fp8_block_cols = bs[1].get<int64_t>();
    }
}

}  // namespace

HfConfig hf_config_parse(const std::string& text, const std::string& name) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) fail("%s: not valid JSON", name.c_str());
    if (!j.is_object()) fail("%s: expected a JSON object", name.c_str());
    ConfigReader r(j, name);
    HfConfig c;
    c.path = name;
    if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
        !j["architectures"][0].is_string())
        fail("%s: missing 'architectures'", name.c_str());
    c.architecture = j["architectures"][0].get<std::string>();
    if (c.architecture == "Qwen2ForCausalLM") {
        c.hp.arch = Arch::Qwen2;
        read_dense(r, c);
    } else if (c.architecture == "LlamaForCausalLM") {
        c.hp.arch = Arch::Llama;
        read_dense(r, c);
    } else if (c.architecture == "DeepseekV2ForCausalLM" || c.architecture == "DeepseekV3ForCausalLM") {
        c.hp.arch = Arch::Deepseek2;
        read_deepseek(r, c, c.architecture == "DeepseekV3ForCausalLM");
    } else {
        fail("%s: unsupported architecture '%s' (supported: Qwen2ForCausalLM, LlamaForCausalLM, "
             "DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)",
             name.c_str(), c.architecture.c_str());
    }
    read_rope_scaling(r, c);
    // Llama 3's scaling becomes the rope_freqs tensor, which only the llama
    // graph reads: elsewhere it would be dropped without a word.
    if (c.llama3_rope && c.hp.arch != Arch::Llama)
        fail("%s: rope_scaling of type llama3 is supported on LlamaForCausalLM only, not %s", name.c_str(),
             c.architecture.c_str());
    if (r.has("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"].get<int64_t>();
    if (r.has("eos_token_id") && j["eos_token_id"].is_number_integer()) c.eos_token_id = j["eos_token_id"].get<int64_t>();
    c.torch_dtype = r.string("torch_dtype", "");
    return c;
}

HfConfig hf_config_load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open", path.c_str());
    std::ostringstream ss;
    ss << in.rdbuf();
    return hf_config_parse(ss.str(), path);
}

}  // namespace moelite
