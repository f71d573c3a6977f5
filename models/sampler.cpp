#include "models/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "core/error.h"

namespace moelite {

Sampler::Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {}

void Sampler::reset() {
    history_.clear();
    rng_.seed(params_.seed);
}

void Sampler::accept(int32_t token) {
    if (params_.penalty_last_n <= 0) return;
    history_.push_back(token);
    while (history_.size() > size_t(params_.penalty_last_n)) history_.pop_front();
}

void Sampler::apply_penalties() {
    const bool active = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                        params_.frequency_penalty != 0.0f;
    if (!active || history_.empty()) return;
    std::unordered_map<int32_t, int32_t> counts;
    for (int32_t t : history_) ++counts[t];
    // candidates_ is indexed by id at this point (built in sample()).
    for (const auto& [id, count] : counts) {
        if (id < 0 || size_t(id) >= candidates_.size()) continue;
        float& logit = candidates_[size_t(id)].logit;
        // As llama.cpp: dividing a negative logit would raise it, so multiply instead.
        if (logit <= 0) {
            logit *= params_.repeat_penalty;
        } else {
            logit /= params_.repeat_penalty;
        }
        logit -= float(count) * params_.frequency_penalty + params_.presence_penalty;
    }
}

void Sampler::apply_top_k(size_t k) {
    if (k == 0 || k >= candidates_.size()) {
        std::sort(candidates_.begin(), candidates_.end(),
                  [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
        return;
    }
    std::partial_sort(candidates_.begin(), candidates_.begin() + long(k), candidates_.end(),
                      [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); });
    candidates_.resize(k);
}

void Sampler::softmax_in_place() {
    // candidates_ sorted by logit, descending.
    const float max_logit = candidates_.front().logit;
    double sum = 0.0;
    for (auto& c : candidates_) {
        c.p = std::exp(c.logit - max_logit);
        sum += c.p;
    }
    for (auto& c : candidates_) c.p = float(c.p / sum);
}

void Sampler::apply_top_p(float p) {
    if (p >= 1.0f) return;
    softmax_in_place();
    double cumulative = 0.0;
    size_t keep = candidates_.size();
    for (size_t i = 0; i < candidates_.size(); ++i) {
        cumulative += candidates_[i].p;
        if (cumulative >= p) {
            keep = i + 1;
            break;
        }
    }
    candidates_.resize(std::max<size_t>(keep, 1));
}

void Sampler::apply_min_p(float p) {
    if (p <= 0.0f) return;
    // Keep tokens whose probability is at least p times the top one's.
    const float threshold = candidates_.front().logit + std::log(p);
    size_t keep = 1;
    while (keep < candidates_.size() && candidates_[keep].logit >= threshold) ++keep;
    candidates_.resize(keep);
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
    MOELITE_ASSERT(n_vocab > 0);
    candidates_.resize(size_t(n_vocab));
    for (int64_t i = 0; i < n_vocab; ++i) {
        float l = logits[i];
        if (std::isnan(l)) l = -std::numeric_limits<float>::infinity();
        candidates_[size_t(i)] = {int32_t(i), l, 0.0f};
    }
    apply_penalties();

    if (params_.temperature <= 0.0f) {
        auto best = std::max_element(candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) {
            return a.logit < b.logit || (a.logit == b.logit && a.id > b.id);
        });
        Candidate chosen = *best;
        candidates_.assign(1, chosen);
        candidates_[0].p = 1.0f;
        return chosen.id;
    }

    apply_top_k(params_.top_k > 0 ? size_t(params_.top_k) : 0);  // also sorts
    apply_top_p(params_.top_p);
    apply_min_p(params_.min_p);
    for (auto& c : candidates_) c.logit /= params_.temperature;
    softmax_in_place();

    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const double r = uniform(rng_);
    double cumulative = 0.0;
    for (const auto& c : candidates_) {
        cumulative += c.p;
        if (r < cumulative) return c.id;
    }
    return candidates_.back().id;
}

}  // namespace moelite
