#include "models/chat.h"

#include <algorithm>

#include "core/error.h"

namespace moelite {
namespace {

constexpr const char* kOpen = "<think>";
constexpr const char* kClose = "</think>";

// Length of the longest suffix of s that is a proper prefix of tag.
size_t partial_tag_suffix(const std::string& s, const std::string& tag) {
    for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
        if (s.compare(s.size() - n, n, tag, 0, n) == 0) return n;
    return 0;
}

}  // namespace

void ThinkSplitter::feed(const std::string& text, const std::function<void(const std::string&, bool)>& emit) {
    held_ += text;
    for (;;) {
        const std::string tag = thinking_ ? kClose : kOpen;
        const size_t at = held_.find(tag);
        if (at == std::string::npos) break;
        if (at > 0) emit(held_.substr(0, at), thinking_);
        held_.erase(0, at + tag.size());
        thinking_ = !thinking_;
    }
    const size_t keep = partial_tag_suffix(held_, thinking_ ? kClose : kOpen);
    if (held_.size() > keep) {
        emit(held_.substr(0, held_.size() - keep), thinking_);
        held_.erase(0, held_.size() - keep);
    }
}

void ThinkSplitter::flush(const std::function<void(const std::string&, bool)>& emit) {
    if (!held_.empty()) emit(held_, thinking_);
    held_.clear();
}

std::string strip_thinking(const std::string& text) {
    const size_t close = text.rfind(kClose);
    std::string answer = close == std::string::npos ? text : text.substr(close + std::string(kClose).size());
    // A reply that opened a thought and never closed it has no answer yet.
    if (close == std::string::npos && text.find(kOpen) != std::string::npos) answer.clear();
    const size_t start = answer.find_first_not_of(" \t\r\n");
    return start == std::string::npos ? std::string() : answer.substr(start);
}

namespace {

// The model's template, its errors naming the model's file.
ChatTemplate model_template(const Session& session, const std::string& source) {
    try {
        return ChatTemplate(source);
    } catch (const Error& e) {
        fail("%s: %s", session.model().path().c_str(), e.what());
    }
}

}  // namespace

Chat::Chat(Session& session, const Tokenizer& tokenizer, const std::string& template_source,
           const SamplerParams& sampling)
    : session_(session),
      tokenizer_(tokenizer),
      template_(model_template(session, template_source)),
      sampler_(sampling) {
    // A template that cannot render one user message is refused now, not
    // at every turn.
    messages_.push_back({{"role", "user"}, {"content", "Hello"}});
    (void)render_prompt();
    messages_ = nlohmann::ordered_json::array();
}

void Chat::set_system(const std::string& text) { system_ = text; }

void Chat::reset() {
    messages_ = nlohmann::ordered_json::array();
    sampler_.reset();
}

void Chat::set_messages(const nlohmann::ordered_json& messages) {
    if (!messages.is_array()) fail("a conversation must be a JSON array of messages");
    for (const auto& m : messages) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
            !m["content"].is_string())
            fail("each message needs a string 'role' and a string 'content'");
        const std::string role = m["role"];
        if (role != "user" && role != "assistant" && role != "system") fail("unknown role '%s'", role.c_str());
    }
    messages_ = messages;
}

std::string Chat::render_prompt() const {
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    if (!system_.empty()) all.push_back({{"role", "system"}, {"content", system_}});
    for (const auto& m : messages_) all.push_back(m);
    auto token_text = [&](int32_t id) -> std::optional<std::string> {
        if (id < 0) return std::nullopt;
        return tokenizer_.token_text(id);
    };
    try {
        return template_.render(all, true, token_text(tokenizer_.bos_id()), token_text(tokenizer_.eos_id()));
    } catch (const jinja::TemplateRaised& e) {
        fail("%s: the chat template refused the conversation: %s", session_.model().path().c_str(), e.what());
    } catch (const Error& e) {
        fail("%s: %s", session_.model().path().c_str(), e.what());
    }
}

GenerateResult Chat::reply(const std::string& user, const GenerateOptions& options,
                           const std::function<void(const std::string&, bool)>& on_text,
                           const std::atomic<bool>* cancel) {
    messages_.push_back({{"role", "user"}, {"content", user}});
    const std::string prompt = render_prompt();
    const std::vector<int32_t> tokens = tokenizer_.encode(prompt, false, true);
    if (tokens.empty()) fail("the chat template rendered an empty prompt");

    // Reuse what the session already holds; always evaluate at least one token.
    const auto& held = session_.tokens();
    size_t common = 0;
    while (common < held.size() && common < tokens.size() && held[common] == tokens[common]) ++common;
    common = std::min(common, tokens.size() - 1);
    session_.truncate(int64_t(common));

    // Templates that pre-fill "<think>\n" start the reply inside the thought.
    const bool prefilled = prompt.size() >= 8 && prompt.rfind(kOpen) != std::string::npos &&
                           prompt.find_first_not_of(" \t\r\n", prompt.rfind(kOpen) + 7) == std::string::npos;
    ThinkSplitter splitter(prefilled);
    GenerateResult r = generate(
        session_, sampler_, tokenizer_, std::span<const int32_t>(tokens).subspan(common), options,
        [&](const std::string& text) {
            splitter.feed(text, on_text);
            return true;
        },
        cancel);
    splitter.flush(on_text);
    const std::string full = prefilled ? std::string(kOpen) + r.text : r.text;
    messages_.push_back({{"role", "assistant"}, {"content", strip_thinking(full)}});
    return r;
}

}  // namespace moelite
