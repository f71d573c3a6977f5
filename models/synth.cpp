#include "models/synth.h"

#include <cmath>
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

DType type_for(const TensorSpec& spec, const SynthOptions& o) {
    if (spec.shape.size() == 1) return DType::F32;  // norms, biases: always F32, as llama.cpp writes them
    DType t = o.type;
    if (spec.role == TensorRole::TokenEmbd && o.embed_type) t = *o.embed_type;
    if (spec.role == TensorRole::Output && o.output_type) t = *o.output_type;
    if (spec.role == TensorRole::FfnGateInp) t = DType::F32;  // the router stays exact
    if (spec.shape[0] % dtype_block_size(t) != 0) t = DType::F16;
    return t;
}

}  // namespace

void synth_write_model(const std::string& path, const HParams& hp, const SynthOptions& o) {
    if (!quant_traits(o.type)) fail("synth: type %s cannot be written", dtype_name(o.type));
    std::vector<TensorSpec> specs = arch_tensor_specs(hp);
    GgufWriter w(path);
    write_model_metadata(w, hp, o.name);
    w.add("general.file_type", uint32_t(0));
    w.add("tokenizer.ggml.model", std::string("none"));
    std::vector<DType> types;
    std::vector<TensorSpec> kept;
    for (const TensorSpec& s : specs) {
        if (s.role == TensorRole::AttnKvB) continue;  // write the split form, as llama.cpp does
        const bool wanted_optional = s.role == TensorRole::Output ||
                                     (s.role == TensorRole::FfnExpProbsB && hp.expert_gating == ExpertGating::Sigmoid);
        if (s.need == TensorNeed::Optional && !wanted_optional) continue;
        if (s.role == TensorRole::Output && hp.tied_embeddings) continue;
        kept.push_back(s);
        types.push_back(type_for(s, o));
        w.add_tensor(s.name, types.back(), s.shape);
    }
    std::vector<float> row;
    std::vector<uint8_t> packed;
    for (size_t i = 0; i < kept.size(); ++i) {
        const TensorSpec& s = kept[i];
        const QuantTraits* q = quant_traits(types[i]);
        const int64_t n0 = s.shape[0];
        int64_t rows = 1;
        for (size_t d = 1; d < s.shape.size(); ++d) rows *= s.shape[d];
        const bool is_norm = s.shape.size() == 1 && s.role != TensorRole::AttnQBias &&
                             s.role != TensorRole::AttnKBias && s.role != TensorRole::AttnVBias &&
                             s.role != TensorRole::FfnExpProbsB;
        const float sd = s.role == TensorRole::TokenEmbd ? 1.0f : (s.shape.size() == 1 ? 0.1f : 1.0f / std::sqrt(float(n0)));
        row.resize(size_t(n0));
        packed.resize(dtype_row_bytes(types[i], n0));
        const uint64_t base = hash_name(s.name, o.seed);
        for (int64_t r = 0; r < rows; ++r) {
            Rng rng{base + uint64_t(r) * 0x2545f4914f6cdd1dull};
            for (auto& x : row) x = is_norm ? 1.0f + 0.1f * rng.normal() : sd * rng.normal();
            q->from_float(row.data(), packed.data(), n0);
            w.append_tensor_data(packed.data(), packed.size());
        }
    }
    w.finish();
}

}  // namespace moelite
