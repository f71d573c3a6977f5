// `moelite template`: renders a chat template (a Jinja file) over a JSON
// context, and prints the result exactly, with no newline added.
//
//   moelite template --template FILE.jinja --context CONTEXT.json [--now UNIX_SECONDS]
//
// The context is a JSON object: messages, add_generation_prompt, bos_token,
// eos_token (null = the model has none) and any other template variables.
// --now fixes the clock strftime_now reads. A template that fails to parse or
// raises gets exit code 1 and its message on stderr.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "core/error.h"
#include "models/chat_template.h"

namespace moelite::app {

namespace {

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open", path.c_str());
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) fail("%s: read error", path.c_str());
    return buf.str();
}

int run_template(int argc, char** argv) {
    cxxopts::Options options("moelite template", "Render a chat template over a JSON context; prints it exactly.");
    options.add_options()
        ("t,template", "Jinja template file", cxxopts::value<std::string>())
        ("c,context", "JSON file: messages, add_generation_prompt, bos_token, eos_token, other variables",
         cxxopts::value<std::string>())
        ("now", "Unix time strftime_now sees (default: the clock)", cxxopts::value<int64_t>())
        ("h,help", "Show this help");
    auto args = options.parse(argc, argv);
    if (args.count("help")) {
        std::cout << options.help();
        return 0;
    }
    if (!args.count("template") || !args.count("context")) {
        std::cerr << "moelite template: --template and --context are required (see --help)\n";
        return 2;
    }
    const std::string template_path = args["template"].as<std::string>();
    const std::string context_path = args["context"].as<std::string>();
    std::string source = read_text_file(template_path);
    nlohmann::ordered_json context;
    try {
        context = nlohmann::ordered_json::parse(read_text_file(context_path));
    } catch (const nlohmann::json::exception& e) {
        fail("%s: not valid JSON: %s", context_path.c_str(), e.what());
    }
    if (!context.is_object()) fail("%s: the context must be a JSON object", context_path.c_str());

    jinja::RenderOptions render_options;
    if (args.count("now")) {
        const std::time_t now = std::time_t(args["now"].as<int64_t>());
        render_options.clock = [now] { return now; };
    }
    std::string text;
    try {
        ChatTemplate chat_template(std::move(source));
        text = chat_template.render_context(context, render_options);
    } catch (const jinja::TemplateRaised& e) {
        throw Error(std::string("template raised: ") + e.what());
    } catch (const Error& e) {
        throw Error(template_path + ": " + e.what());
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return 0;
}

CommandRegistration registration("template", "Render a chat template over a JSON context", run_template);

}  // namespace

}  // namespace moelite::app
