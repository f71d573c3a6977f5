// Test helper (tests/test_util.cpp): the hyper-parameters of the tiny models
// several model tests build with synth, and how they read their logits.
#pragma once

#include <cstdint>
#include <vector>

#include "models/arch.h"

namespace moelite {
class Session;
}

namespace moelite::test {

// Hyper-parameters of the tiny models the model tests build with synth: a
// dense one (2 layers, 64 wide, 4 heads of 16 over 2 KV heads, ff 96) and a
// deepseek2 one (3 layers, the first dense; MLA with kv_lora 32 + rope 16,
// plain q; 16 experts of which 4 plus 1 shared, softmax gating, one group).
HParams tiny_dense_hparams(Arch arch = Arch::Qwen2, int64_t n_vocab = 64);
HParams tiny_deepseek2_hparams();

// The logits of every position of toks ([toks.size() * n_vocab]), evaluated
// in one batch or one token at a time.
std::vector<float> eval_logits(Session& s, const std::vector<int32_t>& toks, bool one_by_one);

}  // namespace moelite::test
