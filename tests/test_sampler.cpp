// models/sampler: each stage of the chain does what it says, and seeds reproduce.
#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "models/sampler.h"

using namespace moelite;

TEST_CASE("sampler: greedy picks the argmax, lowest id on ties") {
    Sampler s(SamplerParams::greedy());
    std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f};
    CHECK(s.sample(logits.data(), 4) == 1);
}

TEST_CASE("sampler: top-k 1 is greedy whatever the temperature") {
    SamplerParams p;
    p.temperature = 5.0f;
    p.top_k = 1;
    Sampler s(p);
    std::vector<float> logits = {0.1f, 0.3f, 0.2f};
    for (int i = 0; i < 20; ++i) CHECK(s.sample(logits.data(), 3) == 1);
}

TEST_CASE("sampler: top-p keeps the smallest nucleus") {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.min_p = 0.0f;
    p.top_p = 0.7f;
    Sampler s(p);
    // probabilities ~ 0.6, 0.3, 0.1: nucleus at 0.7 keeps the first two
    std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
    std::map<int, int> seen;
    for (int i = 0; i < 400; ++i) seen[s.sample(logits.data(), 3)]++;
    CHECK(seen[2] == 0);
    CHECK(seen[0] > seen[1]);
    CHECK(seen[1] > 50);
    CHECK(s.last_candidates().size() == 2);
}

TEST_CASE("sampler: min-p drops tokens far below the top one") {
    SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.2f;
    Sampler s(p);
    std::vector<float> logits = {std::log(0.5f), std::log(0.4f), std::log(0.09f), std::log(0.01f)};
    s.sample(logits.data(), 4);
    CHECK(s.last_candidates().size() == 2);
}

TEST_CASE("sampler: the distribution follows the temperature") {
    SamplerParams p;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.temperature = 1.0f;
    Sampler s(p);
    std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
    int ones = 0;
    const int n = 4000;
    for (int i = 0; i < n; ++i) ones += s.sample(logits.data(), 2);
    CHECK(double(ones) / n == doctest::Approx(0.75).epsilon(0.05));
}

TEST_CASE("sampler: same seed, same tokens; reset replays") {
    SamplerParams p;
    p.seed = 42;
    p.top_k = 0;
    p.min_p = 0.0f;
    std::vector<float> logits(50);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i))) * 2.0f;
    Sampler a(p), b(p);
    std::vector<int> seq_a, seq_b;
    for (int i = 0; i < 30; ++i) {
        seq_a.push_back(a.sample(logits.data(), 50));
        seq_b.push_back(b.sample(logits.data(), 50));
    }
    CHECK(seq_a == seq_b);
    a.reset();
    std::vector<int> again;
    for (int i = 0; i < 30; ++i) again.push_back(a.sample(logits.data(), 50));
    CHECK(again == seq_a);
    p.seed = 43;
    Sampler c(p);
    std::vector<int> seq_c;
    for (int i = 0; i < 30; ++i) seq_c.push_back(c.sample(logits.data(), 50));
    CHECK(seq_c != seq_a);
}

TEST_CASE("sampler: penalties push repeated tokens down") {
    SamplerParams p = SamplerParams::greedy();
    p.repeat_penalty = 2.0f;
    Sampler s(p);
    std::vector<float> logits = {1.0f, 1.5f, -1.0f};
    CHECK(s.sample(logits.data(), 3) == 1);
    s.accept(1);  // 1.5 / 2 = 0.75 < 1.0
    CHECK(s.sample(logits.data(), 3) == 0);

    SamplerParams q = SamplerParams::greedy();
    q.frequency_penalty = 0.3f;
    q.presence_penalty = 0.1f;
    Sampler f(q);
    std::vector<float> l2 = {1.0f, 1.5f};
    f.accept(1);
    CHECK(f.sample(l2.data(), 2) == 1);  // 1.5 - 0.4 = 1.1
    f.accept(1);
    CHECK(f.sample(l2.data(), 2) == 0);  // 1.5 - 0.7 = 0.8

    SamplerParams r = SamplerParams::greedy();
    r.repeat_penalty = 2.0f;
    r.penalty_last_n = 1;
    Sampler w(r);
    w.accept(1);
    w.accept(2);  // pushes 1 out of the window
    CHECK(w.sample(logits.data(), 3) == 1);
}

TEST_CASE("sampler: NaN logits are never chosen") {
    Sampler s(SamplerParams::greedy());
    std::vector<float> logits = {std::nanf(""), -3.0f, std::nanf("")};
    CHECK(s.sample(logits.data(), 3) == 1);
}
