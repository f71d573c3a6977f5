#include "models/synth.h"

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "core/error.h"
#include "core/gguf_writer.h"
#include "models/gguf_meta.h"
#include "quant/quant.h"

namespace moelite {
namespace {

// splitmix64: a fast, well-mixed generator; rows are seeded independently so
// the output does not depend on the order tensors are written in.
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Approximately N(0, 1): sum of four uniforms, rescaled (cheap, bounded).
    float normal() {
        float sum = 0;
        for (int i = 0; i < 4; ++i) sum += float(next() >> 40) * (1.0f / 16777216.0f);
        return (sum - 2.0f) * 1.7320508f;
    }
};

uint64_t hash_name(const std::string& s, uint64_t seed) {
    uint64_t h = seed ^ 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

// llama.cpp's general.file_type for a file whose big tensors are all `type`.
uint32_t llama_file_type(DType type) {
    switch (type) {
        case DType::F32:
            return 0;
        case DType::F16:
            return 1;
        case DType::Q4_0:
            return 2;
        case DType::Q4_1:
            return 3;
        case DType::Q8_0:
            return 7;
        case DType::Q5_0:
            return 8;
        case DType::Q5_1:
            return 9;
        case DType::Q2_K:
            return 10;
        case DType::Q3_K:
            return 11;  // Q3_K_S
        case DType::Q4_K:
            return 14;  // Q4_K_S
        case DType::Q5_K:
            return 16;  // Q5_K_S
        case DType::Q6_K:
            return 18;
        case DType::BF16:
            return 32;
        default:
            return 0;
    }
}

// Without a type function: `type` for 2-D weights, F32 for norms and biases
// (as llama.cpp writes them) and for the MoE router (kept exact).
DType plain_type(const TensorSpec& spec, const SynthOptions& o) {
    if (spec.shape.size() == 1 || spec.role == TensorRole::FfnGateInp) return DType::F32;
    return o.type;
}

bool is_norm(const TensorSpec& s) {
    return s.shape.size() == 1 && s.role != TensorRole::AttnQBias && s.role != TensorRole::AttnKBias &&
           s.role != TensorRole::AttnVBias && s.role != TensorRole::FfnExpProbsB;
}

float std_dev(const TensorSpec& s) {
    if (s.role == TensorRole::TokenEmbd) return 1.0f;
    return s.shape.size() == 1 ? 0.1f : 1.0f / std::sqrt(float(s.shape[0]));
}

// Pools of quantized blocks, one per (type, standard deviation): see
// synth_write_model in the header.
class BlockPools {
  public:
    explicit BlockPools(uint64_t seed) : seed_(seed) {}

    const std::vector<uint8_t>& get(DType type, float sd) {
        uint32_t sd_bits;
        std::memcpy(&sd_bits, &sd, sizeof sd_bits);
        const uint64_t key = uint64_t(type) << 32 | sd_bits;
        auto it = pools_.find(key);
        if (it != pools_.end()) return it->second;
        const int64_t n = synth_pool_blocks * dtype_block_size(type);
        std::vector<float> values(static_cast<size_t>(n));
        Rng rng{hash_name("pool", seed_ ^ key)};
        for (auto& x : values) x = sd * rng.normal();
        std::vector<uint8_t> blocks(dtype_row_bytes(type, n));
        quant_traits(type)->from_float(values.data(), blocks.data(), n);
        return pools_.emplace(key, std::move(blocks)).first->second;
    }

  private:
    uint64_t seed_;
    std::map<uint64_t, std::vector<uint8_t>> pools_;
};

}  // namespace

void synth_write_model(const std::string& path, const HParams& hp, const SynthOptions& o) {
    if (!o.tensor_type && !quant_traits(o.type)) fail("synth: type %s cannot be written", dtype_name(o.type));
    std::vector<TensorSpec> specs = arch_tensor_specs(hp);
    GgufWriter w(path);
    ModelMetadataExtras extras;
    extras.name = o.name;
    extras.file_type = o.file_type.value_or(llama_file_type(o.type));
    extras.vocab_less = !o.tokenizer;
    for (GgufKV& kv : model_metadata(hp, extras)) w.add(std::move(kv.key), std::move(kv.value));
    w.add("moelite.synthetic", true);  // random weights: front ends say so
    if (o.tokenizer) {
        if (int64_t(o.tokenizer->tokens.size()) > hp.n_vocab)
            fail("synth: the tokenizer is larger than the vocabulary");
        // The token list covers every logit ([PADn] fillers), as llama.cpp expects.
        write_tokenizer_metadata(w, Tokenizer::from_metadata(*o.tokenizer, path).to_metadata(size_t(hp.n_vocab)));
    } else {
        w.add("tokenizer.ggml.model", std::string("none"));
    }
    std::vector<DType> types;
    std::vector<TensorSpec> kept;
    for (const TensorSpec& s : specs) {
        // llama.cpp writes the split form; older files have the unsplit one.
        if (s.role == TensorRole::AttnKvB && !o.mla_unsplit_kv_b) continue;
        if ((s.role == TensorRole::AttnKB || s.role == TensorRole::AttnVB) && o.mla_unsplit_kv_b) continue;
        const bool wanted_optional = s.role == TensorRole::Output ||
                                     (s.role == TensorRole::FfnExpProbsB && hp.expert_gating == ExpertGating::Sigmoid);
        if (s.need == TensorNeed::Optional && !wanted_optional) continue;
        if (s.role == TensorRole::Output && hp.tied_embeddings) continue;
        const DType t = o.tensor_type ? o.tensor_type(s.name, s.shape) : plain_type(s, o);
        if (!quant_traits(t) || !quant_traits(t)->from_float)
            fail("synth: %s: type %s cannot be written", s.name.c_str(), dtype_name(t));
        if (s.shape[0] % dtype_block_size(t) != 0)
            fail("synth: %s: rows of %lld do not fit %s's blocks of %lld", s.name.c_str(), (long long)s.shape[0],
                 dtype_name(t), (long long)dtype_block_size(t));
        kept.push_back(s);
        types.push_back(t);
        w.add_tensor(s.name, t, s.shape);
    }
    BlockPools pools(o.seed);
    std::vector<float> row;
    std::vector<uint8_t> packed;
    for (size_t i = 0; i < kept.size(); ++i) {
        const TensorSpec& s = kept[i];
        const DType type = types[i];
        const int64_t n0 = s.shape[0];
        int64_t rows = 1;
        for (size_t d = 1; d < s.shape.size(); ++d) rows *= s.shape[d];
        const float sd = std_dev(s);
        const bool norm = is_norm(s);
        const int64_t row_blocks = n0 / dtype_block_size(type);
        const bool pooled = dtype_block_size(type) > 1 && !norm && row_blocks * rows > synth_pool_blocks;
        const std::vector<uint8_t>* pool = pooled ? &pools.get(type, sd) : nullptr;
        const size_t block_bytes = dtype_block_bytes(type);
        row.resize(size_t(n0));
        packed.resize(dtype_row_bytes(type, n0));
        const uint64_t base = hash_name(s.name, o.seed);
        for (int64_t r = 0; r < rows; ++r) {
            Rng rng{base + uint64_t(r) * 0x2545f4914f6cdd1dull};
            if (pool) {
                for (int64_t b = 0; b < row_blocks; ++b)
                    std::memcpy(packed.data() + size_t(b) * block_bytes,
                                pool->data() + size_t(rng.next() % uint64_t(synth_pool_blocks)) * block_bytes,
                                block_bytes);
            } else {
                for (auto& x : row) x = norm ? 1.0f + 0.1f * rng.normal() : sd * rng.normal();
                quant_traits(type)->from_float(row.data(), packed.data(), n0);
            }
            w.append_tensor_data(packed.data(), packed.size());
        }
    }
    w.finish();
}

}  // namespace moelite

namespace moelite {
namespace {

HParams dense(Arch arch, int64_t vocab, int64_t embd, int64_t ff, int64_t layers, int64_t heads, int64_t kv_heads,
              float theta, float eps) {
    HParams hp;
    hp.arch = arch;
    hp.n_vocab = vocab;
    hp.n_ctx_train = 131072;
    hp.n_embd = embd;
    hp.n_ff = ff;
    hp.n_layer = layers;
    hp.n_head = heads;
    hp.n_head_kv = kv_heads;
    hp.head_dim_k = hp.head_dim_v = embd / heads;
    hp.n_rot = hp.head_dim_k;
    hp.rope_freq_base = theta;
    hp.rms_eps = eps;
    return hp;
}

HParams deepseek(int64_t vocab, int64_t embd, int64_t ff, int64_t layers, int64_t heads, int64_t q_lora,
                 int64_t n_expert, int64_t used, int64_t shared, int64_t ff_exp, int64_t dense_lead) {
    HParams hp;
    hp.arch = Arch::Deepseek2;
    hp.n_vocab = vocab;
    hp.n_ctx_train = 163840;
    hp.n_embd = embd;
    hp.n_ff = ff;
    hp.n_layer = layers;
    hp.n_head = heads;
    hp.n_head_kv = 1;
    hp.q_lora_rank = q_lora;
    hp.kv_lora_rank = 512;
    hp.n_rot = 64;
    hp.head_dim_k_mla = 128 + 64;
    hp.head_dim_v_mla = 128;
    hp.head_dim_k = hp.kv_lora_rank + hp.n_rot;
    hp.head_dim_v = hp.kv_lora_rank;
    hp.n_expert = n_expert;
    hp.n_expert_used = used;
    hp.n_expert_shared = shared;
    hp.n_ff_exp = ff_exp;
    hp.n_layer_dense_lead = dense_lead;
    hp.n_expert_groups = 1;
    hp.n_expert_groups_used = 1;
    hp.rms_eps = 1e-6f;
    hp.rope_freq_base = 10000.0f;
    hp.rope_scaling = RopeScaling::Yarn;
    hp.rope_scaling_factor = 40.0f;
    hp.rope_orig_ctx = 4096;
    return hp;
}

}  // namespace

std::optional<HParams> synth_preset(const std::string& name) {
    if (name == "demo") {  // small enough to build in seconds; pairs with synth_demo_tokenizer()
        HParams hp = dense(Arch::Qwen2, 264, 256, 512, 4, 4, 2, 10000.0f, 1e-6f);
        hp.n_ctx_train = 4096;
        return hp;
    }
    if (name == "r1-qwen-1.5b") return dense(Arch::Qwen2, 151936, 1536, 8960, 28, 12, 2, 10000.0f, 1e-6f);
    if (name == "r1-qwen-7b") return dense(Arch::Qwen2, 152064, 3584, 18944, 28, 28, 4, 10000.0f, 1e-6f);
    if (name == "r1-llama-8b") return dense(Arch::Llama, 128256, 4096, 14336, 32, 32, 8, 500000.0f, 1e-5f);
    if (name == "deepseek-v2-lite") {
        HParams hp = deepseek(102400, 2048, 10944, 27, 16, 0, 64, 6, 2, 1408, 1);
        hp.rope_yarn_log_mul = 0.1f * 0.707f;
        return hp;
    }
    if (name == "deepseek-v3") {
        HParams hp = deepseek(129280, 7168, 18432, 61, 128, 1536, 256, 8, 1, 2048, 3);
        hp.expert_gating = ExpertGating::Sigmoid;
        hp.expert_weights_norm = true;
        hp.expert_weights_scale = 2.5f;
        hp.n_expert_groups = 8;
        hp.n_expert_groups_used = 4;
        hp.rope_yarn_log_mul = 0.1f;
        return hp;
    }
    return std::nullopt;
}

std::string synth_preset_names() {
    return "demo, r1-qwen-1.5b, r1-qwen-7b, r1-llama-8b, deepseek-v2-lite, deepseek-v3";
}

}  // namespace moelite

namespace moelite {

TokenizerMetadata synth_demo_tokenizer() {
    TokenizerMetadata t;
    t.model = "gpt2";
    t.pre = "qwen2";
    // Byte-level BPE spells each byte as one printable character: printable
    // Latin-1 bytes as themselves, the others as U+0100 onwards, in order.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        const int cp = printable ? b : next++;
        std::string s;
        if (cp < 0x80) {
            s += char(cp);
        } else {
            s += char(0xc0 | (cp >> 6));
            s += char(0x80 | (cp & 0x3f));
        }
        t.tokens.push_back(s);
        t.token_types.push_back(1);
    }
    for (const char* special : {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"}) {
        t.tokens.push_back(special);
        t.token_types.push_back(3);  // control
    }
    for (const char* added : {"<think>", "</think>"}) {
        t.tokens.push_back(added);
        t.token_types.push_back(4);  // user-defined: matched before BPE, printed as text
    }
    t.bos_id = 256;
    t.eos_id = 257;
    t.add_bos = true;
    t.chat_template =
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
        "{% elif m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
        "{% elif m['role'] == 'assistant' %}{% set c = m['content'] %}{% if '</think>' in c %}"
        "{% set c = c.split('</think>')[-1] %}{% endif %}"
        "{{ '<｜Assistant｜>' + c + eos_token }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}";
    return t;
}

}  // namespace moelite
