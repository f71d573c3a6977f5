#include "models/weight_use.h"

#include <unordered_set>

#include "core/error.h"

namespace moelite {

WeightUse weights_read(const Model& model, size_t embedding_rows, const std::function<int64_t(int64_t)>& experts_read) {
    const HParams& hp = model.hparams();
    WeightUse u;
    u.file_bytes = model.file().file_size();
    u.weight_bytes = model.weight_bytes();
    for (int64_t layer = -1; layer < hp.n_layer; ++layer) {
        const int64_t chosen = layer >= 0 ? experts_read(layer) : 0;
        bool has_experts = false;
        for (int r = 0; r < int(TensorRole::Count); ++r) {
            const TensorRole role = TensorRole(r);
            const Tensor* t = model.weight(role, layer);
            if (!t) continue;
            if (role == TensorRole::TokenEmbd && !hp.tied_embeddings) {
                u.embedding_bytes += size_t(t->nb[1]) * embedding_rows;
            } else if (is_expert_stack(role)) {
                MOELITE_ASSERT(t->ne[2] == hp.n_expert);
                u.expert_bytes += size_t(t->nb[2]) * size_t(chosen);  // one slice per expert
                has_experts = true;
            } else {
                u.dense_bytes += t->nbytes();
            }
        }
        if (has_experts) {
            u.experts_chosen += chosen;
            u.experts_total += hp.n_expert;
        }
    }
    return u;
}

WeightUse weight_use(const Model& model, const ExpertStats& experts, std::span<const int32_t> tokens) {
    const std::unordered_set<int32_t> distinct(tokens.begin(), tokens.end());
    return weights_read(model, distinct.size(), [&](int64_t layer) {
        int64_t chosen = 0;
        if (experts.n_expert() > 0 && layer < experts.n_layer())
            for (int64_t e = 0; e < experts.n_expert(); ++e) chosen += experts.count(layer, e) > 0;
        return chosen;
    });
}

}  // namespace moelite
