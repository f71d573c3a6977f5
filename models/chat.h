// Chat: a conversation over a Session, rendered with the model's own chat
// template (models/chat_template.h).
//
// Each turn renders the whole conversation, reuses the longest prefix of
// tokens the session already holds, evaluates the rest and generates. R1
// models think aloud between <think> and </think>: the stream is split into
// thinking and answer text (also when the template pre-fills "<think>\n", so
// the answer has no opening tag), and only the answer goes into the history,
// as DeepSeek's template itself does.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/chat_template.h"
#include "models/generate.h"

namespace moelite {

// Splits streamed text into thinking and answer parts at <think> / </think>,
// holding back a possible partial tag until it is decided.
class ThinkSplitter {
public:
    explicit ThinkSplitter(bool thinking = false) : thinking_(thinking) {}
    // Calls emit(text, thinking) for each decided segment (tags are dropped).
    void feed(const std::string& text, const std::function<void(const std::string&, bool)>& emit);
    void flush(const std::function<void(const std::string&, bool)>& emit);
    bool thinking() const { return thinking_; }

private:
    bool thinking_;
    std::string held_;
};

// The answer part of an assistant message: what follows the last </think>,
// leading whitespace removed.
std::string strip_thinking(const std::string& text);

class Chat {
public:
    Chat(Session& session, const Tokenizer& tokenizer, const std::string& template_source, const SamplerParams& sampling);

    void set_system(const std::string& text);  // empty: none
    void reset();                               // forget the conversation (system prompt kept)
    const nlohmann::ordered_json& messages() const { return messages_; }
    void set_messages(const nlohmann::ordered_json& messages);  // /load; validated

    // Adds the user message and streams the answer: on_text(text, thinking).
    GenerateResult reply(const std::string& user, const GenerateOptions& options,
                         const std::function<void(const std::string&, bool)>& on_text,
                         const std::atomic<bool>* cancel = nullptr);

    // The prompt text the template gives for the conversation so far plus a
    // generation prompt (for tests and --verbose).
    std::string render_prompt() const;

private:
    Session& session_;
    const Tokenizer& tokenizer_;
    ChatTemplate template_;
    Sampler sampler_;
    std::string system_;
    nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
};

}  // namespace moelite
