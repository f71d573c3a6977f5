#include "convert/tensor_map.h"

#include <cctype>
#include <set>
#include <unordered_set>

#include "core/error.h"

namespace moelite {
namespace {

std::string layer_prefix(int64_t il) { return "model.layers." + std::to_string(il) + "."; }

// The Hugging Face name of a role's (single) source tensor, or "" when the role
// has no single source (stacked experts, split kv_b, computed tensors).
std::string hf_name_of(TensorRole role, int64_t il) {
    const std::string p = il >= 0 ? layer_prefix(il) : std::string();
    switch (role) {
        case TensorRole::TokenEmbd: return "model.embed_tokens.weight";
        case TensorRole::OutputNorm: return "model.norm.weight";
        case TensorRole::Output: return "lm_head.weight";
        case TensorRole::AttnNorm: return p + "input_layernorm.weight";
        case TensorRole::AttnQ: return p + "self_attn.q_proj.weight";
        case TensorRole::AttnK: return p + "self_attn.k_proj.weight";
        case TensorRole::AttnV: return p + "self_attn.v_proj.weight";
        case TensorRole::AttnQBias: return p + "self_attn.q_proj.bias";
        case TensorRole::AttnKBias: return p + "self_attn.k_proj.bias";
        case TensorRole::AttnVBias: return p + "self_attn.v_proj.bias";
        case TensorRole::AttnOutput: return p + "self_attn.o_proj.weight";
        case TensorRole::AttnQA: return p + "self_attn.q_a_proj.weight";
        case TensorRole::AttnQANorm: return p + "self_attn.q_a_layernorm.weight";
        case TensorRole::AttnQB: return p + "self_attn.q_b_proj.weight";
        case TensorRole::AttnKvAMqa: return p + "self_attn.kv_a_proj_with_mqa.weight";
        case TensorRole::AttnKvANorm: return p + "self_attn.kv_a_layernorm.weight";
        case TensorRole::AttnKB:
        case TensorRole::AttnVB: return p + "self_attn.kv_b_proj.weight";
        case TensorRole::FfnNorm: return p + "post_attention_layernorm.weight";
        case TensorRole::FfnGate: return p + "mlp.gate_proj.weight";
        case TensorRole::FfnUp: return p + "mlp.up_proj.weight";
        case TensorRole::FfnDown: return p + "mlp.down_proj.weight";
        case TensorRole::FfnGateInp: return p + "mlp.gate.weight";
        case TensorRole::FfnExpProbsB: return p + "mlp.gate.e_score_correction_bias";
        case TensorRole::FfnGateShexp: return p + "mlp.shared_experts.gate_proj.weight";
        case TensorRole::FfnUpShexp: return p + "mlp.shared_experts.up_proj.weight";
        case TensorRole::FfnDownShexp: return p + "mlp.shared_experts.down_proj.weight";
        default: return std::string();
    }
}

const char* expert_matrix(TensorRole role) {
    switch (role) {
        case TensorRole::FfnGateExps: return "gate_proj";
        case TensorRole::FfnUpExps: return "up_proj";
        case TensorRole::FfnDownExps: return "down_proj";
        default: return nullptr;
    }
}

// Layer index of a "model.layers.N." name, or -1.
int64_t layer_of(const std::string& name) {
    static const std::string prefix = "model.layers.";
    if (name.compare(0, prefix.size(), prefix) != 0) return -1;
    int64_t v = 0;
    size_t i = prefix.size();
    if (i >= name.size() || !isdigit((unsigned char)name[i])) return -1;
    for (; i < name.size() && isdigit((unsigned char)name[i]); ++i) {
        v = v * 10 + (name[i] - '0');
        if (v > (int64_t(1) << 30)) return -1;
    }
    return i < name.size() && name[i] == '.' ? v : -1;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

ConvertPlan plan_conversion(const HfConfig& config, const std::vector<std::string>& hf_names,
                            const std::string& source_name) {
    const HParams& hp = config.hp;
    const std::unordered_set<std::string> present(hf_names.begin(), hf_names.end());
    std::set<std::string> used;
    ConvertPlan plan;

    for (TensorSpec& spec : arch_tensor_specs(hp)) {
        ConvertItem item;
        item.spec = spec;
        const TensorRole role = spec.role;

        if (role == TensorRole::RopeFreqs) {
            if (!config.llama3_rope) continue;
            item.transform = TensorTransform::Llama3RopeFreqs;
            plan.items.push_back(std::move(item));
            continue;
        }
        if (role == TensorRole::AttnKvB) continue;  // we always write the split form, as llama.cpp does
        if (role == TensorRole::Output && hp.tied_embeddings) continue;

        if (const char* matrix = expert_matrix(role)) {
            item.transform = TensorTransform::StackExperts;
            for (int64_t e = 0; e < hp.n_expert; ++e) {
                std::string name = layer_prefix(spec.layer) + "mlp.experts." + std::to_string(e) + "." + matrix + ".weight";
                if (!present.count(name))
                    fail("%s: tensor '%s' is missing (needed for %s)", source_name.c_str(), name.c_str(),
                         spec.name.c_str());
                item.sources.push_back(std::move(name));
            }
        } else {
            std::string name = hf_name_of(role, spec.layer);
            MOELITE_ASSERT(!name.empty());
            if (!present.count(name)) {
                if (spec.need == TensorNeed::Required || spec.need == TensorNeed::OneOfKvB)
                    fail("%s: tensor '%s' is missing (needed for %s)", source_name.c_str(), name.c_str(),
                         spec.name.c_str());
                // Optional for the loader, not for this checkpoint: an untied
                // model without its output matrix would run on the embedding,
                // and sigmoid routing without its selection bias picks other experts.
                if (role == TensorRole::Output)
                    fail("%s: tensor '%s' is missing, and tie_word_embeddings is false", source_name.c_str(),
                         name.c_str());
                if (role == TensorRole::FfnExpProbsB && hp.expert_gating == ExpertGating::Sigmoid)
                    fail("%s: tensor '%s' is missing (the selection bias of sigmoid routing)", source_name.c_str(),
                         name.c_str());
                continue;
            }
            item.sources.push_back(std::move(name));
            if (role == TensorRole::AttnKB) item.transform = TensorTransform::SplitKvBK;
            if (role == TensorRole::AttnVB) item.transform = TensorTransform::SplitKvBV;
            if (hp.arch == Arch::Llama && (role == TensorRole::AttnQ || role == TensorRole::AttnQBias)) {
                item.transform = TensorTransform::PermuteRopeRows;
                item.heads = hp.n_head;
            }
            if (hp.arch == Arch::Llama && (role == TensorRole::AttnK || role == TensorRole::AttnKBias)) {
                item.transform = TensorTransform::PermuteRopeRows;
                item.heads = hp.n_head_kv;
            }
        }
        for (const auto& s : item.sources) used.insert(s);
        plan.items.push_back(std::move(item));
    }

    for (const std::string& name : hf_names) {
        if (used.count(name)) continue;
        if (ends_with(name, "_scale_inv")) {
            // FP8 block scales travel with their weight.
            const std::string weight = name.substr(0, name.size() - std::string("_scale_inv").size());
            if (!present.count(weight))
                fail("%s: scale tensor '%s' has no weight '%s'", source_name.c_str(), name.c_str(), weight.c_str());
            if (!used.count(weight) && layer_of(weight) < hp.n_layer) {
                fail("%s: tensor '%s' does not map to any %s tensor", source_name.c_str(), weight.c_str(),
                     arch_name(hp.arch));
            }
            continue;
        }
        if (ends_with(name, "rotary_emb.inv_freq")) continue;  // a buffer, recomputed from rope_theta
        const int64_t il = layer_of(name);
        if (il >= hp.n_layer && il < config.n_layer_all) {
            plan.skipped.push_back(name);  // multi-token prediction
            continue;
        }
        if (name == "lm_head.weight" && hp.tied_embeddings) {
            plan.skipped.push_back(name);
            continue;
        }
        fail("%s: tensor '%s' does not map to any %s tensor", source_name.c_str(), name.c_str(), arch_name(hp.arch));
    }
    return plan;
}

}  // namespace moelite
