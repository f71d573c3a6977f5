// Chat templates over the Jinja interpreter. See models/chat_template.h.
#include "models/chat_template.h"

namespace moelite {

namespace {

jinja::Template parse_chat_template(const std::string& source) {
    try {
        return jinja::Template(source);
    } catch (const Error& e) {
        throw Error(std::string("chat template: ") + e.what());
    }
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source) : source_(std::move(source)), template_(parse_chat_template(source_)) {}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const std::optional<std::string>& bos_token,
                                 const std::optional<std::string>& eos_token, const nlohmann::ordered_json& extra,
                                 const jinja::RenderOptions& options) const {
    if (!messages.is_array()) fail("chat template: messages must be a JSON array");
    if (!extra.is_null() && !extra.is_object()) fail("chat template: extra variables must be a JSON object");
    nlohmann::ordered_json context = nlohmann::ordered_json::object();
    context["messages"] = messages;
    context["add_generation_prompt"] = add_generation_prompt;
    if (bos_token) context["bos_token"] = *bos_token;
    if (eos_token) context["eos_token"] = *eos_token;
    if (extra.is_object())
        for (auto it = extra.begin(); it != extra.end(); ++it) context[it.key()] = it.value();
    return render_context(context, options);
}

std::string ChatTemplate::render_context(const nlohmann::ordered_json& context,
                                         const jinja::RenderOptions& options) const {
    if (!context.is_object()) fail("chat template: the context must be a JSON object");
    jinja::Value variables = jinja::from_json(context);
    jinja::DictPtr vars = jinja::make_dict();
    for (const auto& [k, v] : variables.as_dict().entries()) {
        if ((k == "bos_token" || k == "eos_token") && v.is_none()) continue;
        vars->set(k, v);
    }
    try {
        return template_.render(jinja::Value::dict(vars), options);
    } catch (const jinja::TemplateRaised&) {
        throw;
    } catch (const Error& e) {
        throw Error(std::string("chat template: ") + e.what());
    }
}

}  // namespace moelite
