// Chat templates: the Jinja template a model ships (tokenizer_config.json's
// chat_template, or the GGUF key tokenizer.chat_template) rendered over a
// conversation, as transformers' apply_chat_template does.
//
// Variables passed: messages, add_generation_prompt, bos_token and eos_token
// (each left undefined when the model has none), and any extra ones (tools,
// enable_thinking, date_string, ...). Key order of JSON objects is kept, since
// `tojson` prints it. The Jinja interpreter is models/jinja_eval.h.
//
// Errors: a template that does not parse throws moelite::Error at
// construction ("chat template: line N: ..."); one that fails while
// rendering throws moelite::Error ("chat template: line N: ..."), except
// raise_exception(msg) in the template, which throws jinja::TemplateRaised
// with msg alone (the template's own words, meant for the user).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "models/jinja_eval.h"

namespace moelite {

class ChatTemplate {
public:
    explicit ChatTemplate(std::string source);

    // messages: a JSON array of {"role", "content", ...}; extra: a JSON object or null.
    std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                       const std::optional<std::string>& bos_token, const std::optional<std::string>& eos_token,
                       const nlohmann::ordered_json& extra = nullptr,
                       const jinja::RenderOptions& options = {}) const;

    // All variables in one JSON object. A bos_token or eos_token that is null
    // is left undefined (the model has none), as render() does.
    std::string render_context(const nlohmann::ordered_json& context, const jinja::RenderOptions& options = {}) const;

    const std::string& source() const { return source_; }

private:
    std::string source_;
    jinja::Template template_;
};

}  // namespace moelite
