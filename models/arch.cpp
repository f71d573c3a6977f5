#include "models/arch.h"

#include <cstdio>

#include "core/error.h"

namespace moelite {
namespace {

using Shape = std::vector<int64_t>;

// Shapes shared by the dense families.
Shape s_embd(const HParams& hp, int64_t) { return {hp.n_embd}; }
Shape s_tok_embd(const HParams& hp, int64_t) { return {hp.n_embd, hp.n_vocab}; }
Shape s_rope_freqs(const HParams& hp, int64_t) { return {hp.n_rot / 2}; }
Shape s_q(const HParams& hp, int64_t) { return {hp.n_embd, hp.n_head * hp.head_dim_k}; }
Shape s_k(const HParams& hp, int64_t) { return {hp.n_embd, hp.n_head_kv * hp.head_dim_k}; }
Shape s_v(const HParams& hp, int64_t) { return {hp.n_embd, hp.n_head_kv * hp.head_dim_v}; }
Shape s_q_bias(const HParams& hp, int64_t) { return {hp.n_head * hp.head_dim_k}; }
Shape s_k_bias(const HParams& hp, int64_t) { return {hp.n_head_kv * hp.head_dim_k}; }
Shape s_v_bias(const HParams& hp, int64_t) { return {hp.n_head_kv * hp.head_dim_v}; }
Shape s_attn_out(const HParams& hp, int64_t) { return {hp.n_head * hp.head_dim_v, hp.n_embd}; }
Shape s_ffn_in(const HParams& hp, int64_t) { return {hp.n_embd, hp.n_ff}; }
Shape s_ffn_down(const HParams& hp, int64_t) { return {hp.n_ff, hp.n_embd}; }

// deepseek2 (MLA + MoE). The first n_layer_dense_lead layers have a dense FFN.
Shape s_mla_q_a(const HParams& hp, int64_t) { return hp.q_lora_rank ? Shape{hp.n_embd, hp.q_lora_rank} : Shape{}; }
Shape s_mla_q_a_norm(const HParams& hp, int64_t) { return hp.q_lora_rank ? Shape{hp.q_lora_rank} : Shape{}; }
Shape s_mla_q_b(const HParams& hp, int64_t) {
    return hp.q_lora_rank ? Shape{hp.q_lora_rank, hp.n_head * hp.qk_head_dim()} : Shape{};
}
Shape s_mla_q(const HParams& hp, int64_t) {
    return hp.q_lora_rank ? Shape{} : Shape{hp.n_embd, hp.n_head * hp.qk_head_dim()};
}
Shape s_mla_kv_a(const HParams& hp, int64_t) { return {hp.n_embd, hp.kv_lora_rank + hp.qk_rope_dim()}; }
Shape s_mla_kv_a_norm(const HParams& hp, int64_t) { return {hp.kv_lora_rank}; }
Shape s_mla_kv_b(const HParams& hp, int64_t) {
    return {hp.kv_lora_rank, hp.n_head * (hp.qk_nope_dim() + hp.v_head_dim())};
}
Shape s_mla_k_b(const HParams& hp, int64_t) { return {hp.qk_nope_dim(), hp.kv_lora_rank, hp.n_head}; }
Shape s_mla_v_b(const HParams& hp, int64_t) { return {hp.kv_lora_rank, hp.v_head_dim(), hp.n_head}; }
Shape s_mla_out(const HParams& hp, int64_t) { return {hp.n_head * hp.v_head_dim(), hp.n_embd}; }
Shape s_dense_ffn_in(const HParams& hp, int64_t il) { return hp.layer_is_moe(il) ? Shape{} : Shape{hp.n_embd, hp.n_ff}; }
Shape s_dense_ffn_down(const HParams& hp, int64_t il) {
    return hp.layer_is_moe(il) ? Shape{} : Shape{hp.n_ff, hp.n_embd};
}
Shape s_router(const HParams& hp, int64_t il) { return hp.layer_is_moe(il) ? Shape{hp.n_embd, hp.n_expert} : Shape{}; }
Shape s_probs_b(const HParams& hp, int64_t il) { return hp.layer_is_moe(il) ? Shape{hp.n_expert} : Shape{}; }
Shape s_exps_in(const HParams& hp, int64_t il) {
    return hp.layer_is_moe(il) ? Shape{hp.n_embd, hp.n_ff_exp, hp.n_expert} : Shape{};
}
Shape s_exps_down(const HParams& hp, int64_t il) {
    return hp.layer_is_moe(il) ? Shape{hp.n_ff_exp, hp.n_embd, hp.n_expert} : Shape{};
}
Shape s_shexp_in(const HParams& hp, int64_t il) {
    return hp.layer_is_moe(il) && hp.n_expert_shared ? Shape{hp.n_embd, hp.n_ff_exp * hp.n_expert_shared} : Shape{};
}
Shape s_shexp_down(const HParams& hp, int64_t il) {
    return hp.layer_is_moe(il) && hp.n_expert_shared ? Shape{hp.n_ff_exp * hp.n_expert_shared, hp.n_embd} : Shape{};
}

constexpr auto R = TensorNeed::Required;
constexpr auto O = TensorNeed::Optional;

const std::vector<TensorDecl> kLlama = {
    {TensorRole::TokenEmbd, "token_embd.weight", false, R, s_tok_embd},
    {TensorRole::OutputNorm, "output_norm.weight", false, R, s_embd},
    {TensorRole::Output, "output.weight", false, O, s_tok_embd},
    {TensorRole::RopeFreqs, "rope_freqs.weight", false, O, s_rope_freqs},
    {TensorRole::AttnNorm, "blk.%d.attn_norm.weight", true, R, s_embd},
    {TensorRole::AttnQ, "blk.%d.attn_q.weight", true, R, s_q},
    {TensorRole::AttnK, "blk.%d.attn_k.weight", true, R, s_k},
    {TensorRole::AttnV, "blk.%d.attn_v.weight", true, R, s_v},
    {TensorRole::AttnQBias, "blk.%d.attn_q.bias", true, O, s_q_bias},
    {TensorRole::AttnKBias, "blk.%d.attn_k.bias", true, O, s_k_bias},
    {TensorRole::AttnVBias, "blk.%d.attn_v.bias", true, O, s_v_bias},
    {TensorRole::AttnOutput, "blk.%d.attn_output.weight", true, R, s_attn_out},
    {TensorRole::FfnNorm, "blk.%d.ffn_norm.weight", true, R, s_embd},
    {TensorRole::FfnGate, "blk.%d.ffn_gate.weight", true, R, s_ffn_in},
    {TensorRole::FfnUp, "blk.%d.ffn_up.weight", true, R, s_ffn_in},
    {TensorRole::FfnDown, "blk.%d.ffn_down.weight", true, R, s_ffn_down},
};

// Qwen2 is Llama with q/k/v biases (always present) and NEOX RoPE.
const std::vector<TensorDecl> kQwen2 = {
    {TensorRole::TokenEmbd, "token_embd.weight", false, R, s_tok_embd},
    {TensorRole::OutputNorm, "output_norm.weight", false, R, s_embd},
    {TensorRole::Output, "output.weight", false, O, s_tok_embd},
    {TensorRole::AttnNorm, "blk.%d.attn_norm.weight", true, R, s_embd},
    {TensorRole::AttnQ, "blk.%d.attn_q.weight", true, R, s_q},
    {TensorRole::AttnK, "blk.%d.attn_k.weight", true, R, s_k},
    {TensorRole::AttnV, "blk.%d.attn_v.weight", true, R, s_v},
    {TensorRole::AttnQBias, "blk.%d.attn_q.bias", true, R, s_q_bias},
    {TensorRole::AttnKBias, "blk.%d.attn_k.bias", true, R, s_k_bias},
    {TensorRole::AttnVBias, "blk.%d.attn_v.bias", true, R, s_v_bias},
    {TensorRole::AttnOutput, "blk.%d.attn_output.weight", true, R, s_attn_out},
    {TensorRole::FfnNorm, "blk.%d.ffn_norm.weight", true, R, s_embd},
    {TensorRole::FfnGate, "blk.%d.ffn_gate.weight", true, R, s_ffn_in},
    {TensorRole::FfnUp, "blk.%d.ffn_up.weight", true, R, s_ffn_in},
    {TensorRole::FfnDown, "blk.%d.ffn_down.weight", true, R, s_ffn_down},
};

const std::vector<TensorDecl> kDeepseek2 = {
    {TensorRole::TokenEmbd, "token_embd.weight", false, R, s_tok_embd},
    {TensorRole::OutputNorm, "output_norm.weight", false, R, s_embd},
    {TensorRole::Output, "output.weight", false, O, s_tok_embd},
    {TensorRole::AttnNorm, "blk.%d.attn_norm.weight", true, R, s_embd},
    {TensorRole::AttnQA, "blk.%d.attn_q_a.weight", true, R, s_mla_q_a},
    {TensorRole::AttnQANorm, "blk.%d.attn_q_a_norm.weight", true, R, s_mla_q_a_norm},
    {TensorRole::AttnQB, "blk.%d.attn_q_b.weight", true, R, s_mla_q_b},
    {TensorRole::AttnQ, "blk.%d.attn_q.weight", true, R, s_mla_q},
    {TensorRole::AttnKvAMqa, "blk.%d.attn_kv_a_mqa.weight", true, R, s_mla_kv_a},
    {TensorRole::AttnKvANorm, "blk.%d.attn_kv_a_norm.weight", true, R, s_mla_kv_a_norm},
    {TensorRole::AttnKvB, "blk.%d.attn_kv_b.weight", true, TensorNeed::OneOfKvB, s_mla_kv_b},
    {TensorRole::AttnKB, "blk.%d.attn_k_b.weight", true, TensorNeed::OneOfKvB, s_mla_k_b},
    {TensorRole::AttnVB, "blk.%d.attn_v_b.weight", true, TensorNeed::OneOfKvB, s_mla_v_b},
    {TensorRole::AttnOutput, "blk.%d.attn_output.weight", true, R, s_mla_out},
    {TensorRole::FfnNorm, "blk.%d.ffn_norm.weight", true, R, s_embd},
    {TensorRole::FfnGate, "blk.%d.ffn_gate.weight", true, R, s_dense_ffn_in},
    {TensorRole::FfnUp, "blk.%d.ffn_up.weight", true, R, s_dense_ffn_in},
    {TensorRole::FfnDown, "blk.%d.ffn_down.weight", true, R, s_dense_ffn_down},
    {TensorRole::FfnGateInp, "blk.%d.ffn_gate_inp.weight", true, R, s_router},
    {TensorRole::FfnExpProbsB, "blk.%d.exp_probs_b.bias", true, O, s_probs_b},
    {TensorRole::FfnGateExps, "blk.%d.ffn_gate_exps.weight", true, R, s_exps_in},
    {TensorRole::FfnUpExps, "blk.%d.ffn_up_exps.weight", true, R, s_exps_in},
    {TensorRole::FfnDownExps, "blk.%d.ffn_down_exps.weight", true, R, s_exps_down},
    {TensorRole::FfnGateShexp, "blk.%d.ffn_gate_shexp.weight", true, R, s_shexp_in},
    {TensorRole::FfnUpShexp, "blk.%d.ffn_up_shexp.weight", true, R, s_shexp_in},
    {TensorRole::FfnDownShexp, "blk.%d.ffn_down_shexp.weight", true, R, s_shexp_down},
};

struct ArchName {
    Arch arch;
    const char* name;
};
constexpr ArchName kArchNames[] = {{Arch::Llama, "llama"}, {Arch::Qwen2, "qwen2"}, {Arch::Deepseek2, "deepseek2"}};

}  // namespace

const char* arch_name(Arch arch) {
    for (const auto& a : kArchNames)
        if (a.arch == arch) return a.name;
    MOELITE_ASSERT(false);
    return "";
}

std::optional<Arch> arch_from_name(std::string_view name) {
    for (const auto& a : kArchNames)
        if (name == a.name) return a.arch;
    return std::nullopt;
}

const char* tensor_role_name(TensorRole role) {
    static const char* const kNames[] = {
        "token_embd",   "output_norm",   "output",       "rope_freqs",    "attn_norm",    "attn_q",
        "attn_k",       "attn_v",        "attn_q_bias",  "attn_k_bias",   "attn_v_bias",  "attn_output",
        "attn_q_a",     "attn_q_a_norm", "attn_q_b",     "attn_kv_a_mqa", "attn_kv_a_norm", "attn_kv_b",
        "attn_k_b",     "attn_v_b",      "ffn_norm",     "ffn_gate",      "ffn_up",       "ffn_down",
        "ffn_gate_inp", "exp_probs_b",   "ffn_gate_exps", "ffn_up_exps",  "ffn_down_exps", "ffn_gate_shexp",
        "ffn_up_shexp", "ffn_down_shexp",
    };
    static_assert(sizeof(kNames) / sizeof(kNames[0]) == size_t(TensorRole::Count), "role name table out of date");
    MOELITE_ASSERT(role < TensorRole::Count);
    return kNames[size_t(role)];
}

const std::vector<TensorDecl>& arch_tensor_decls(Arch arch) {
    switch (arch) {
        case Arch::Llama: return kLlama;
        case Arch::Qwen2: return kQwen2;
        case Arch::Deepseek2: return kDeepseek2;
    }
    MOELITE_ASSERT(false);
    return kLlama;
}

std::string tensor_name(const char* pattern, int64_t layer) {
    std::string s;
    for (const char* p = pattern; *p; ++p) {
        if (p[0] == '%' && p[1] == 'd') {
            s += std::to_string(layer);
            ++p;
        } else {
            s += *p;
        }
    }
    return s;
}

std::vector<TensorSpec> arch_tensor_specs(const HParams& hp) {
    const auto& decls = arch_tensor_decls(hp.arch);
    std::vector<TensorSpec> specs;
    for (const auto& d : decls) {
        if (d.per_layer) continue;
        Shape shape = d.shape(hp, -1);
        if (!shape.empty()) specs.push_back({d.role, -1, d.name, std::move(shape), d.need});
    }
    for (int64_t il = 0; il < hp.n_layer; ++il) {
        for (const auto& d : decls) {
            if (!d.per_layer) continue;
            Shape shape = d.shape(hp, il);
            if (!shape.empty()) specs.push_back({d.role, il, tensor_name(d.name, il), std::move(shape), d.need});
        }
    }
    return specs;
}

}  // namespace moelite
