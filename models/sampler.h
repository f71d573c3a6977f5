// Token sampling: turns one row of logits into the next token id.
//
// The chain, in llama.cpp's default order: repetition / presence / frequency
// penalties over the last penalty_last_n accepted tokens, then top-k, top-p
// (nucleus), min-p, temperature, and a draw from the resulting distribution
// with a seeded generator (same seed and logits, same tokens). temperature <= 0
// means greedy (argmax after penalties). A Sampler belongs to one session.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace moelite {

struct SamplerParams {
    float temperature = 0.8f;   // <= 0: greedy
    int32_t top_k = 40;         // <= 0: off
    float top_p = 0.95f;        // >= 1: off
    float min_p = 0.05f;        // <= 0: off
    float repeat_penalty = 1.0f;     // 1: off; > 1 discourages repeats (divides positive logits)
    float presence_penalty = 0.0f;   // subtracted once from each token seen
    float frequency_penalty = 0.0f;  // subtracted per occurrence
    int32_t penalty_last_n = 64;     // how many accepted tokens the penalties look at (0: off)
    uint64_t seed = 0x5eed;

    // DeepSeek's recommended settings for the R1 models.
    static SamplerParams deepseek_r1() {
        SamplerParams p;
        p.temperature = 0.6f;
        p.top_p = 0.95f;
        p.top_k = 0;
        p.min_p = 0.0f;
        return p;
    }
    static SamplerParams greedy() {
        SamplerParams p;
        p.temperature = 0.0f;
        return p;
    }
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& params = SamplerParams());

    // Picks a token from logits[0..n_vocab). Does not accept it.
    int32_t sample(const float* logits, int64_t n_vocab);
    // Records a token in the penalty history (prompt tokens too, if wanted).
    void accept(int32_t token);
    // Clears the history and reseeds.
    void reset();

    const SamplerParams& params() const { return params_; }

    // Probabilities of the candidates after the chain (sorted, most likely
    // first), of the last sample() call: for tests and --verbose output.
    struct Candidate {
        int32_t id;
        float logit;
        float p;
    };
    const std::vector<Candidate>& last_candidates() const { return candidates_; }

private:
    void apply_penalties();
    void apply_top_k(size_t k);
    void apply_top_p(float p);
    void apply_min_p(float p);
    void softmax_in_place();

    SamplerParams params_;
    std::mt19937_64 rng_;
    std::deque<int32_t> history_;
    std::vector<Candidate> candidates_;
};

}  // namespace moelite
