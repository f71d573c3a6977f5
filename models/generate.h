// Generation: run a prompt, then sample tokens one at a time until an
// end-of-generation token, a token budget, a full context or a cancel request,
// streaming text as it comes. Text is emitted in whole UTF-8 characters (a
// character split across tokens is held back until it is complete).
#pragma once

#include <atomic>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "models/sampler.h"
#include "models/session.h"
#include "models/tokenizer.h"

namespace moelite {

enum class StopReason { EndOfGeneration, Length, ContextFull, Cancelled };
const char* stop_reason_name(StopReason r);

struct GenerateOptions {
    int64_t max_tokens = 256;  // < 0: until the context is full
    bool ignore_eos = false;   // never sample an end-of-generation token (benchmarks, tests)
};

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated ids (the end-of-generation token excluded)
    std::string text;             // their text
    StopReason stop = StopReason::Length;
};

// Evaluates `prompt` (appended to what the session holds), then generates.
// on_text receives each complete piece of text; returning false stops like a
// cancel. `cancel` (may be null) is polled between tokens.
GenerateResult generate(Session& session, Sampler& sampler, const Tokenizer& tokenizer, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const std::function<bool(const std::string&)>& on_text,
                        const std::atomic<bool>* cancel = nullptr);

// Length of the longest prefix of `text` that does not end inside a UTF-8
// character.
size_t utf8_complete_prefix(const std::string& text);

}  // namespace moelite
