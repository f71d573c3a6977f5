#include "models/model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_set>

#include "core/error.h"
#include "core/log.h"
#include "core/mmap.h"
#include "quant/quant.h"

namespace moelite {
namespace {

// Reads hyper-parameters with the file's name in every message.
class HParamReader {
public:
    HParamReader(const GgufFile& f, const std::string& arch) : f_(f), prefix_(arch + ".") {}

    int64_t count(const char* key) const {
        std::string k = prefix_ + key;
        if (!f_.has(k)) fail("%s: missing metadata key '%s'", f_.path().c_str(), k.c_str());
        return check(k, f_.get_i64(k));
    }
    int64_t count(const char* key, int64_t fallback) const {
        std::string k = prefix_ + key;
        return f_.has(k) ? check(k, f_.get_i64(k)) : fallback;
    }
    // A float setting: finite, and within [lo, hi] when given.
    float real(const char* key, float fallback, float lo = -std::numeric_limits<float>::max(),
               float hi = std::numeric_limits<float>::max()) const {
        std::string k = prefix_ + key;
        if (!f_.has(k)) return fallback;
        const float v = f_.get_f32(k);
        if (!std::isfinite(v))
            fail("%s: metadata key '%s' = %g is not a finite number", f_.path().c_str(), k.c_str(), double(v));
        if (v < lo || v > hi)
            fail("%s: metadata key '%s' = %g is out of range [%g, %g]", f_.path().c_str(), k.c_str(), double(v),
                 double(lo), double(hi));
        return v;
    }
    bool flag(const char* key, bool fallback) const {
        std::string k = prefix_ + key;
        return f_.has(k) ? f_.get_bool(k) : fallback;
    }
    std::string text(const char* key, const std::string& fallback) const {
        std::string k = prefix_ + key;
        return f_.has(k) ? f_.get_string(k) : fallback;
    }

private:
    int64_t check(const std::string& key, int64_t v) const {
        if (v < 0 || v > kMaxHParamCount)
            fail("%s: metadata key '%s' = %lld is out of range", f_.path().c_str(), key.c_str(), (long long)v);
        return v;
    }

    const GgufFile& f_;
    std::string prefix_;
};

void require_positive(const GgufFile& f, const char* what, int64_t v) {
    if (v <= 0) fail("%s: %s must be positive", f.path().c_str(), what);
}

}  // namespace

HParams hparams_from_gguf(const GgufFile& f) {
    const std::string arch_str = f.get_string("general.architecture");
    auto arch = arch_from_name(arch_str);
    if (!arch)
        fail("%s: unsupported architecture '%s' (supported: llama, qwen2, deepseek2)", f.path().c_str(),
             arch_str.c_str());
    HParamReader r(f, arch_str);
    HParams hp;
    hp.arch = *arch;
    hp.n_layer = r.count("block_count");
    // Each layer has tensors: a count past the file's is a lie, refused before
    // anything is sized by it.
    if (hp.n_layer > int64_t(f.tensors().size()))
        fail("%s: block_count %lld is more than the file's %zu tensors", f.path().c_str(), (long long)hp.n_layer,
             f.tensors().size());
    hp.n_embd = r.count("embedding_length");
    hp.n_ff = r.count("feed_forward_length", 0);
    hp.n_ctx_train = r.count("context_length", 4096);
    hp.n_head = r.count("attention.head_count");
    hp.n_head_kv = r.count("attention.head_count_kv", hp.n_head);
    require_positive(f, "block_count", hp.n_layer);
    require_positive(f, "embedding_length", hp.n_embd);
    require_positive(f, "attention.head_count", hp.n_head);
    require_positive(f, "attention.head_count_kv", hp.n_head_kv);
    if (hp.n_head % hp.n_head_kv != 0)
        fail("%s: head_count (%lld) is not a multiple of head_count_kv (%lld)", f.path().c_str(),
             (long long)hp.n_head, (long long)hp.n_head_kv);
    const int64_t default_head_dim = hp.n_embd / hp.n_head;
    if (!f.has(arch_str + ".attention.key_length") && hp.n_embd % hp.n_head != 0)
        fail("%s: head_count (%lld) does not divide embedding_length (%lld), and attention.key_length is not given",
             f.path().c_str(), (long long)hp.n_head, (long long)hp.n_embd);
    hp.head_dim_k = r.count("attention.key_length", default_head_dim);
    hp.head_dim_v = r.count("attention.value_length", hp.head_dim_k);
    require_positive(f, "attention.key_length", hp.head_dim_k);
    require_positive(f, "attention.value_length", hp.head_dim_v);
    hp.rms_eps = r.real("attention.layer_norm_rms_epsilon", 1e-5f);
    if (!(hp.rms_eps > 0.0f && hp.rms_eps < 1.0f)) fail("%s: layer_norm_rms_epsilon out of range", f.path().c_str());
    hp.rope_freq_base = r.real("rope.freq_base", 10000.0f);
    if (!(hp.rope_freq_base > 1.0f)) fail("%s: rope.freq_base out of range", f.path().c_str());

    const std::string scaling = r.text("rope.scaling.type", "none");
    if (scaling == "none") {
        hp.rope_scaling = RopeScaling::None;
    } else if (scaling == "linear") {
        hp.rope_scaling = RopeScaling::Linear;
    } else if (scaling == "yarn") {
        hp.rope_scaling = RopeScaling::Yarn;
    } else {
        fail("%s: unsupported rope.scaling.type '%s'", f.path().c_str(), scaling.c_str());
    }
    // Real models scale the context by at most a few hundred.
    hp.rope_scaling_factor = r.real("rope.scaling.factor", 1.0f, 0.0f, 65536.0f);
    if (hp.rope_scaling != RopeScaling::None && !(hp.rope_scaling_factor > 0.0f))
        fail("%s: rope.scaling.factor must be positive", f.path().c_str());
    hp.rope_orig_ctx = r.count("rope.scaling.original_context_length", hp.n_ctx_train);
    if (hp.rope_scaling == RopeScaling::Yarn)
        require_positive(f, "rope.scaling.original_context_length", hp.rope_orig_ctx);
    // DeepSeek's is 0.1 or 0.0707: the softmax scale grows by its square times ln(factor)^2.
    hp.rope_yarn_log_mul = r.real("rope.scaling.yarn_log_multiplier", 0.0f, 0.0f, 10.0f);
    hp.rope_yarn_beta_fast = r.real("rope.scaling.yarn_beta_fast", 32.0f, 1e-3f, 1e4f);
    hp.rope_yarn_beta_slow = r.real("rope.scaling.yarn_beta_slow", 1.0f, 1e-3f, 1e4f);

    if (hp.arch == Arch::Deepseek2) {
        hp.n_layer_dense_lead = r.count("leading_dense_block_count", 0);
        hp.q_lora_rank = r.count("attention.q_lora_rank", 0);
        hp.kv_lora_rank = r.count("attention.kv_lora_rank");
        hp.head_dim_k_mla = r.count("attention.key_length_mla", 0);
        hp.head_dim_v_mla = r.count("attention.value_length_mla", 0);
        if ((hp.head_dim_k_mla == 0) != (hp.head_dim_v_mla == 0))
            fail("%s: key_length_mla and value_length_mla must be given together", f.path().c_str());
        hp.n_ff_exp = r.count("expert_feed_forward_length");
        hp.n_expert = r.count("expert_count");
        hp.n_expert_used = r.count("expert_used_count");
        hp.n_expert_shared = r.count("expert_shared_count", 0);
        hp.expert_weights_scale = r.real("expert_weights_scale", 1.0f, 1e-6f, 1e6f);
        hp.expert_weights_norm = r.flag("expert_weights_norm", false);
        const int64_t gating = r.count("expert_gating_func", int64_t(ExpertGating::Softmax));
        if (gating != int64_t(ExpertGating::Softmax) && gating != int64_t(ExpertGating::Sigmoid))
            fail("%s: unsupported expert_gating_func %lld", f.path().c_str(), (long long)gating);
        hp.expert_gating = ExpertGating(gating);
        hp.n_expert_groups = r.count("expert_group_count", 1);
        hp.n_expert_groups_used = r.count("expert_group_used_count", hp.n_expert_groups);
        hp.n_layer_nextn = r.count("nextn_predict_layers", 0);
        require_positive(f, "expert_count", hp.n_expert);
        require_positive(f, "expert_used_count", hp.n_expert_used);
        if (hp.n_expert_used > hp.n_expert) fail("%s: expert_used_count exceeds expert_count", f.path().c_str());
        if (hp.n_expert_groups <= 0 || hp.n_expert % hp.n_expert_groups != 0 || hp.n_expert_groups_used <= 0 ||
            hp.n_expert_groups_used > hp.n_expert_groups)
            fail("%s: expert_group_count / expert_group_used_count do not divide the experts", f.path().c_str());
        if (hp.n_expert_groups > 1) {
            // Groups are ranked by their best experts (the top 2 with sigmoid
            // gating, as DeepSeek-V3), and the experts are chosen from the kept ones.
            const int64_t per_group = hp.n_expert / hp.n_expert_groups;
            if (hp.expert_gating == ExpertGating::Sigmoid && per_group < 2)
                fail("%s: expert_group_count %lld leaves %lld expert per group; ranking groups needs at least 2",
                     f.path().c_str(), (long long)hp.n_expert_groups, (long long)per_group);
            if (hp.n_expert_used > hp.n_expert_groups_used * per_group)
                fail(
                    "%s: expert_used_count %lld is more than the %lld experts of the %lld groups kept "
                    "(expert_group_used_count)",
                    f.path().c_str(), (long long)hp.n_expert_used, (long long)(hp.n_expert_groups_used * per_group),
                    (long long)hp.n_expert_groups_used);
        }
        if (hp.n_layer_dense_lead > hp.n_layer) fail("%s: leading_dense_block_count exceeds block_count", f.path().c_str());
        // MTP layers, when present, are counted in block_count; we run only the trunk.
        if (hp.n_layer_nextn > 0) {
            if (hp.n_layer_nextn >= hp.n_layer) fail("%s: nextn_predict_layers out of range", f.path().c_str());
            hp.n_layer -= hp.n_layer_nextn;
        }
    }
    const bool rot_given = f.has(arch_str + ".rope.dimension_count");
    hp.n_rot =
        hp.arch == Arch::Deepseek2 ? r.count("rope.dimension_count") : r.count("rope.dimension_count", hp.head_dim_k);
    if (hp.n_rot <= 0 || hp.n_rot % 2 != 0 || hp.n_rot > std::max(hp.qk_head_dim(), hp.head_dim_k))
        fail(rot_given ? "%s: rope.dimension_count (%lld) is invalid"
                       : "%s: the RoPE dimension (%lld: the head size, rope.dimension_count not being given) is "
                         "invalid: it must be even and positive",
             f.path().c_str(), (long long)hp.n_rot);
    if (hp.arch == Arch::Deepseek2 && hp.qk_nope_dim() < 0)
        fail("%s: key length is smaller than the RoPE dimension", f.path().c_str());

    const std::string vocab_key = arch_str + ".vocab_size";
    if (f.has(vocab_key)) {
        hp.n_vocab = f.get_i64(vocab_key);
    } else if (const GgufValue* tokens = f.find("tokenizer.ggml.tokens")) {
        hp.n_vocab = int64_t(tokens->size());
    } else if (const GgufTensorInfo* emb = f.find_tensor("token_embd.weight")) {
        hp.n_vocab = emb->ne[1];
    }
    if (hp.n_vocab <= 0 || hp.n_vocab > kMaxVocab)
        fail("%s: vocabulary size %lld is out of range", f.path().c_str(), (long long)hp.n_vocab);
    hp.tied_embeddings = f.find_tensor("output.weight") == nullptr;
    return hp;
}

std::optional<Tokenizer> tokenizer_from_gguf(const GgufFile& f) {
    const std::string model = f.opt_string("tokenizer.ggml.model").value_or("none");
    if (model == "none") return std::nullopt;
    if (model != "gpt2")
        fail("%s: tokenizer model '%s' is not supported (only byte-level BPE, \"gpt2\")", f.path().c_str(),
             model.c_str());
    TokenizerMetadata md;
    md.model = model;
    md.pre = f.opt_string("tokenizer.ggml.pre").value_or("default");
    md.tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
    if (md.tokens.empty()) fail("%s: tokenizer.ggml.tokens is empty", f.path().c_str());
    if (f.has("tokenizer.ggml.token_type")) {
        for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) {
            // llama.cpp's token types are 0..6; anything past int32 is no type at all.
            if (t < std::numeric_limits<int32_t>::min() || t > std::numeric_limits<int32_t>::max())
                fail("%s: tokenizer.ggml.token_type holds %lld", f.path().c_str(), (long long)t);
            md.token_types.push_back(int32_t(t));
        }
    }
    if (f.has("tokenizer.ggml.merges")) md.merges = f.get_array<std::string>("tokenizer.ggml.merges");
    auto id = [&](const char* key) -> int32_t {
        auto v = f.opt_i64(key);
        if (!v) return -1;
        if (*v < 0 || *v >= int64_t(md.tokens.size()))
            fail("%s: %s = %lld is outside the vocabulary", f.path().c_str(), key, (long long)*v);
        return int32_t(*v);
    };
    md.bos_id = id("tokenizer.ggml.bos_token_id");
    md.eos_id = id("tokenizer.ggml.eos_token_id");
    md.eot_id = id("tokenizer.ggml.eot_token_id");
    md.pad_id = id("tokenizer.ggml.padding_token_id");
    md.add_bos = f.opt_bool("tokenizer.ggml.add_bos_token");
    md.add_eos = f.opt_bool("tokenizer.ggml.add_eos_token");
    md.chat_template = f.opt_string("tokenizer.chat_template").value_or("");
    return Tokenizer::from_metadata(md, f.path());
}

std::shared_ptr<const Model> Model::load(const std::string& path, Backend& host) {
    std::shared_ptr<Model> m(new Model());
    m->file_ = GgufFile::open(path);
    const GgufFile& f = *m->file_;
    m->hp_ = hparams_from_gguf(f);
    const HParams& hp = m->hp_;
    m->layers_.resize(size_t(hp.n_layer));
    if (auto t = f.opt_string("tokenizer.chat_template")) m->chat_template_ = *t;
    m->tokenizer_ = tokenizer_from_gguf(f);
    if (m->tokenizer_ && int64_t(m->tokenizer_->vocab_size()) > hp.n_vocab)
        fail("%s: the tokenizer has %zu tokens but the model only %lld logits", path.c_str(),
             size_t(m->tokenizer_->vocab_size()), (long long)hp.n_vocab);

    // The whole mapping is one host buffer; weights are views into it.
    m->buffer_ = host.wrap_host_memory(const_cast<uint8_t*>(f.file_data()), f.file_size());
    MOELITE_ASSERT(m->buffer_ != nullptr);

    std::unordered_set<std::string> used;
    for (const TensorSpec& spec : arch_tensor_specs(hp)) {
        const GgufTensorInfo* info = f.find_tensor(spec.name);
        if (!info) {
            if (spec.need == TensorNeed::Required)
                fail("%s: missing tensor '%s'", path.c_str(), spec.name.c_str());
            continue;
        }
        // Shapes must match exactly, trailing 1s aside.
        bool same = true;
        for (int i = 0; i < kMaxDims; ++i) {
            const int64_t want = i < int(spec.shape.size()) ? spec.shape[size_t(i)] : 1;
            same = same && info->ne[i] == want;
        }
        if (!same) {
            std::string want = "[";
            for (size_t i = 0; i < spec.shape.size(); ++i) want += (i ? ", " : "") + std::to_string(spec.shape[i]);
            fail("%s: tensor '%s' has shape %s, expected %s]", path.c_str(), spec.name.c_str(),
                 info->shape_string().c_str(), want.c_str());
        }
        if (!quant_traits(info->type))
            fail("%s: tensor '%s' has type %s, which moelite cannot compute", path.c_str(), spec.name.c_str(),
                 dtype_name(info->type));
        if (is_non_mul_mat_weight(spec.role) && info->type != DType::F32)
            fail("%s: tensor '%s' has type %s; norm weights, biases and RoPE factors must be f32", path.c_str(),
                 spec.name.c_str(), dtype_name(info->type));
        Tensor& t = m->tensors_.emplace_back();
        gguf_tensor_view(*info, t);
        t.buffer = m->buffer_.get();
        t.flags |= kTensorWeight;
        m->weight_bytes_ += info->nbytes;
        used.insert(spec.name);
        if (spec.layer < 0) {
            m->globals_[size_t(spec.role)] = &t;
        } else {
            m->layers_[size_t(spec.layer)][size_t(spec.role)] = &t;
        }
    }
    if (hp.arch == Arch::Deepseek2) {
        for (int64_t il = 0; il < hp.n_layer; ++il) {
            const auto& l = m->layers_[size_t(il)];
            const bool split = l[size_t(TensorRole::AttnKB)] && l[size_t(TensorRole::AttnVB)];
            if (!split && !l[size_t(TensorRole::AttnKvB)])
                fail("%s: layer %lld has neither attn_kv_b nor attn_k_b + attn_v_b", path.c_str(), (long long)il);
        }
    }
    m->adopt_weights(host);
    size_t ignored = 0;
    for (const auto& info : f.tensors())
        if (!used.count(info.name)) ++ignored;
    if (ignored) MOELITE_LOG_INFO("%s: %zu tensors not used by this runtime (e.g. multi-token prediction)", path.c_str(), ignored);
    return m;
}

void Model::adopt_weights(Backend& host) {
    // Offered: every weight of two dimensions or fewer that the forward
    // passes (models/llama.cpp, models/deepseek2.cpp) read whole: mul_mat's
    // weights, the norms' weights and biases, and the token embedding when it
    // is also the output matrix (tied: get_rows reads it too, and decode reads
    // all of it every token). Not an untied token embedding, of which get_rows
    // reads a few rows, nor the experts, which mul_mat_id reads from the
    // mapped file so that unchosen ones are never touched.
    const bool tied = weight(TensorRole::Output) == nullptr;
    bool adopted = false;
    for (const TensorSpec& spec : arch_tensor_specs(hp_)) {
        const bool embedding = spec.role == TensorRole::TokenEmbd;
        if ((embedding && !tied) || is_expert_stack(spec.role)) continue;
        Tensor* t = weight(spec.role, spec.layer);
        if (t == nullptr || t->ne[0] * t->ne[1] != t->nelements()) continue;
        const void* mapped = t->data;
        const size_t bytes = t->nbytes();
        const WeightReaders readers = embedding                          ? WeightReaders::MulMatAndGetRows
                                      : is_non_mul_mat_weight(spec.role) ? WeightReaders::NotMulMat
                                                                         : WeightReaders::MulMatOnly;
        std::unique_ptr<Buffer> own = host.adopt_weight(*t, readers);
        if (!own) continue;
        own_buffers_.push_back(std::move(own));
        adopted = true;
        // The copy replaces the mapped pages: let them leave the resident set
        // as we go, so that loading never holds both.
        if (const MappedFile* map = file_->mapping())
            map->advise_dontneed(size_t(static_cast<const uint8_t*>(mapped) - file_->file_data()), bytes);
    }
    // Reading the copies' sources also mapped their neighbours (the kernel
    // maps cached pages around a fault), experts among them: unmap the whole
    // file, so that only what the forward pass reads is resident (and can be
    // evicted). Later reads fault the pages in again from the page cache.
    if (adopted)
        if (const MappedFile* map = file_->mapping()) map->advise_dontneed(0, file_->file_size());
}

Tensor* Model::weight(TensorRole role, int64_t layer) const {
    if (layer < 0) return globals_[size_t(role)];
    MOELITE_ASSERT(layer < int64_t(layers_.size()));
    return layers_[size_t(layer)][size_t(role)];
}

std::string Model::description() const {
    std::map<DType, size_t> bytes_by_type;
    for (const auto& t : tensors_) bytes_by_type[t.type] += t.nbytes();
    DType main_type = DType::F32;
    size_t best = 0;
    for (auto& [type, bytes] : bytes_by_type)
        if (bytes > best) best = bytes, main_type = type;
    double params = 0;
    for (const auto& t : tensors_) params += double(t.nelements());
    const char* unit = "M";
    double scaled = params / 1e6;
    if (scaled >= 1000) unit = "B", scaled /= 1000;
    return strprintf("%s %.1f%s %s", arch_name(hp_.arch), scaled, unit, dtype_name(main_type));
}

}  // namespace moelite
