#include "models/generate.h"

#include <limits>

#include "core/error.h"

namespace moelite {

const char* stop_reason_name(StopReason r) {
    switch (r) {
        case StopReason::EndOfGeneration: return "eog";
        case StopReason::Length: return "length";
        case StopReason::ContextFull: return "context";
        case StopReason::Cancelled: return "cancelled";
    }
    return "";
}

size_t utf8_complete_prefix(const std::string& text) {
    // Look back at most 3 bytes for the lead byte of the last character.
    const size_t n = text.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back) {
        const unsigned char c = static_cast<unsigned char>(text[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte
        size_t len = 1;
        if ((c & 0xE0) == 0xC0) len = 2;
        else if ((c & 0xF0) == 0xE0) len = 3;
        else if ((c & 0xF8) == 0xF0) len = 4;
        return back >= len ? n : n - back;  // an invalid lead byte counts as complete
    }
    return n;  // only continuation bytes: pass them through
}

namespace {

// A NaN among the logits means the computation went wrong (corrupt weights,
// metadata that overflows): sampling from them would print noise.
void check_logits(const Session& session, const std::vector<float>& logits) {
    // No early exit and an int flag: the loop vectorizes (every token passes here).
    int any_nan = 0;
    for (float v : logits) any_nan |= int(v != v);
    if (any_nan)
        fail("%s: the model computed NaN logits (are its weights or metadata corrupt?)", session.model().path().c_str());
}

}  // namespace

GenerateResult generate(Session& session, Sampler& sampler, const Tokenizer& tokenizer, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const std::function<bool(const std::string&)>& on_text,
                        const std::atomic<bool>* cancel) {
    GenerateResult result;
    if (prompt.empty()) fail("the prompt is empty");
    std::vector<float> logits;
    if (session.n_past() + int64_t(prompt.size()) >= session.n_ctx()) {
        result.stop = StopReason::ContextFull;
        return result;
    }
    session.eval(prompt, false, &logits);
    check_logits(session, logits);
    std::string pending;  // bytes of an unfinished UTF-8 character
    const int64_t n_vocab = session.model().hparams().n_vocab;
    std::vector<int32_t> banned;
    if (options.ignore_eos)
        for (int32_t id = 0; id < int32_t(tokenizer.vocab_size()); ++id)
            if (tokenizer.is_eog(id)) banned.push_back(id);
    for (int64_t i = 0; options.max_tokens < 0 || i < options.max_tokens; ++i) {
        if (cancel && cancel->load()) {
            result.stop = StopReason::Cancelled;
            return result;
        }
        for (int32_t id : banned) logits[size_t(id)] = -std::numeric_limits<float>::infinity();
        const int32_t token = sampler.sample(logits.data(), n_vocab);
        sampler.accept(token);
        if (tokenizer.is_eog(token)) {
            result.stop = StopReason::EndOfGeneration;
            if (!pending.empty()) on_text(pending);
            return result;
        }
        result.tokens.push_back(token);
        if (token < int32_t(tokenizer.vocab_size())) {
            const std::string& piece = tokenizer.token_to_piece(token);
            result.text += piece;
            pending += piece;
            const size_t ready = utf8_complete_prefix(pending);
            if (ready > 0) {
                if (on_text && !on_text(pending.substr(0, ready))) {
                    result.stop = StopReason::Cancelled;
                    return result;
                }
                pending.erase(0, ready);
            }
        }
        if (session.n_past() + 1 >= session.n_ctx()) {
            result.stop = StopReason::ContextFull;
            return result;
        }
        session.eval(std::span<const int32_t>(&token, 1), false, &logits);
        check_logits(session, logits);
    }
    if (!pending.empty() && on_text) on_text(pending);
    result.stop = StopReason::Length;
    return result;
}

}  // namespace moelite
