// Chat templates (models/chat_template.h) and `moelite template`: every case
// of ../shared/fixtures/templates/cases.json rendered exactly as the
// reference renderer did, plus a fixture-free check of the thin layer and an
// end-to-end run of the binary.
//
// Three public cases differ between the two reference engines (see the
// fixtures' README). We render whenever either engine renders: `expected`
// when the case has it, else `jinja2_expected`; a case with neither must fail
// with the reference's error message.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/chat_template.h"
#include "tests/test_util.h"

using namespace moelite;
using json = nlohmann::ordered_json;

namespace {

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << path.string());
    std::ostringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

// The template variables of a fixture case, as the reference received them.
json case_context(const json& c) {
    json ctx = json::object();
    ctx["messages"] = c["messages"];
    ctx["add_generation_prompt"] = c["add_generation_prompt"];
    for (const char* token : {"bos_token", "eos_token"})
        if (!c[token].is_null()) ctx[token] = c[token];
    for (auto it = c["extra"].begin(); it != c["extra"].end(); ++it) ctx[it.key()] = it.value();
    return ctx;
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return out + "'";
}

}  // namespace

TEST_CASE("chat template fixtures: every case renders exactly as the reference") {
    MOELITE_REQUIRE_FIXTURES();
    const auto dir = test::fixtures_dir() / "templates";
    const json cases = json::parse(read_file(dir / "cases.json"));
    REQUIRE(cases.is_array());
    REQUIRE(cases.size() >= 90);
    std::map<std::string, std::unique_ptr<ChatTemplate>> templates;
    int passed = 0, rendered = 0, errors = 0;
    for (const json& c : cases) {
        const std::string name = c["template"].get<std::string>() + " / " + c["name"].get<std::string>();
        INFO("case " << name);
        auto& tmpl = templates[c["template"].get<std::string>()];
        if (!tmpl) tmpl = std::make_unique<ChatTemplate>(read_file(dir / (c["template"].get<std::string>() + ".jinja")));
        const json ctx = case_context(c);
        const json* expected = c.contains("expected") ? &c["expected"]
                               : c.contains("jinja2_expected") ? &c["jinja2_expected"]
                                                               : nullptr;
        if (expected) {
            std::string out;
            try {
                out = tmpl->render_context(ctx);
            } catch (const Error& e) {
                FAIL_CHECK("render failed: " << e.what());
                continue;
            }
            CHECK(out == expected->get<std::string>());
            if (out == expected->get<std::string>()) ++passed, ++rendered;
        } else {
            REQUIRE(c.value("expected_error", false));
            const std::string want = c["reference_error"].get<std::string>();
            try {
                tmpl->render_context(ctx);
                FAIL_CHECK("expected an error: " << want);
            } catch (const jinja::TemplateRaised& e) {
                CHECK(std::string(e.what()) == want);
                if (std::string(e.what()) == want) ++passed, ++errors;
            }
        }
    }
    MESSAGE(passed << " of " << cases.size() << " template cases pass (" << rendered << " rendered, " << errors
                   << " raised as expected)");
    CHECK(passed == int(cases.size()));
}

TEST_CASE("chat template fixtures: the render() call matches render_context()") {
    MOELITE_REQUIRE_FIXTURES();
    const auto dir = test::fixtures_dir() / "templates";
    const json cases = json::parse(read_file(dir / "cases.json"));
    int checked = 0;
    for (const json& c : cases) {
        if (!c.contains("expected")) continue;
        INFO("case " << c["template"].get<std::string>() << " / " << c["name"].get<std::string>());
        ChatTemplate tmpl(read_file(dir / (c["template"].get<std::string>() + ".jinja")));
        auto token = [&](const char* key) {
            return c[key].is_null() ? std::optional<std::string>() : std::optional<std::string>(c[key].get<std::string>());
        };
        CHECK(tmpl.render(c["messages"], c["add_generation_prompt"].get<bool>(), token("bos_token"), token("eos_token"),
                          c["extra"]) == c["expected"].get<std::string>());
        if (++checked == 20) break;
    }
    CHECK(checked == 20);
}

TEST_CASE("chat template: the thin layer, without fixtures") {
    const std::string source =
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}{% if not loop.last %}|{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
        "{% if eos_token is defined %}{{ eos_token }}{% endif %}{{ tools | tojson if tools is defined else '' }}";
    ChatTemplate t(source);
    json messages = json::parse(R"([{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}])");
    CHECK(t.render(messages, true, std::string("<s>"), std::nullopt) == "<s><|user|>hi|<|assistant|>yo<|assistant|>");
    CHECK(t.render(messages, false, std::nullopt, std::string("</s>")) == "<|user|>hi|<|assistant|>yo</s>");
    json extra = json::parse(R"({"tools": [{"name": "f", "arguments": {"b": 1, "a": 2}}]})");
    CHECK(t.render(messages, false, std::nullopt, std::nullopt, extra) ==
          "<|user|>hi|<|assistant|>yo[{\"name\": \"f\", \"arguments\": {\"b\": 1, \"a\": 2}}]");
    // null tokens in a context mean "the model has none"
    json ctx = json::parse(R"({"messages": [], "bos_token": null, "eos_token": "E", "add_generation_prompt": false})");
    CHECK(t.render_context(ctx) == "E");

    CHECK_THROWS_WITH_AS(ChatTemplate("{% for x in y %}"), doctest::Contains("chat template: line 1"), Error);
    CHECK_THROWS_WITH_AS(ChatTemplate("{{ x.y() }}").render(json::array(), false, std::nullopt, std::nullopt),
                         doctest::Contains("chat template: line 1"), Error);
    CHECK_THROWS_WITH_AS(ChatTemplate("{{ raise_exception('no system role') }}")
                             .render(json::array(), false, std::nullopt, std::nullopt),
                         "no system role", jinja::TemplateRaised);
    CHECK_THROWS_AS(t.render(json::object(), false, std::nullopt, std::nullopt), Error);
}

TEST_CASE("moelite template: prints the rendering exactly; a raising template exits non-zero with its message") {
    test::TempDir tmp;
    const std::string bin = test::moelite_binary().string();
    write_file(tmp / "t.jinja", "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}\n");
    write_file(tmp / "ctx.json", R"({"messages": [{"role": "user", "content": "नमस्ते 😀"}], "bos_token": "<s>"})");
    std::string out;
    int rc = test::run_command(shell_quote(bin) + " template --template " + shell_quote((tmp / "t.jinja").string()) +
                                   " --context " + shell_quote((tmp / "ctx.json").string()),
                               &out);
    CHECK(rc == 0);
    CHECK(out == "<s>[user]नमस्ते 😀");  // no newline added, the template's last one dropped

    write_file(tmp / "raise.jinja", "{% if messages|length > 0 %}{{ raise_exception('Conversation roles must alternate!') }}{% endif %}");
    rc = test::run_command(shell_quote(bin) + " template -t " + shell_quote((tmp / "raise.jinja").string()) + " -c " +
                               shell_quote((tmp / "ctx.json").string()),
                           &out);
    CHECK(rc != 0);
    CHECK(out.find("Conversation roles must alternate!") != std::string::npos);

    write_file(tmp / "bad.json", "{not json");
    rc = test::run_command(shell_quote(bin) + " template -t " + shell_quote((tmp / "t.jinja").string()) + " -c " +
                               shell_quote((tmp / "bad.json").string()),
                           &out);
    CHECK(rc != 0);
    CHECK(out.find("bad.json") != std::string::npos);
}

TEST_CASE("moelite template on fixture cases: a rendering and a raise_exception") {
    MOELITE_REQUIRE_FIXTURES();
    const auto dir = test::fixtures_dir() / "templates";
    const json cases = json::parse(read_file(dir / "cases.json"));
    test::TempDir tmp;
    const std::string bin = test::moelite_binary().string();
    int ran = 0;
    for (const json& c : cases) {
        const std::string tname = c["template"].get<std::string>();
        const std::string cname = c["name"].get<std::string>();
        bool render_case = tname == "meta-llama-Llama-3.1-8B-Instruct" && cname == "tools_in_system_message";
        bool raise_case = cname == "two_tool_calls_error";
        if (!render_case && !raise_case) continue;
        INFO("case " << tname << " / " << cname);
        write_file(tmp / "ctx.json", case_context(c).dump());
        std::string out;
        int rc = test::run_command(shell_quote(bin) + " template --template " +
                                       shell_quote((dir / (tname + ".jinja")).string()) + " --context " +
                                       shell_quote((tmp / "ctx.json").string()),
                                   &out);
        if (render_case) {
            CHECK(rc == 0);
            CHECK(out == c["expected"].get<std::string>());
        } else {
            CHECK(rc != 0);
            CHECK(out.find(c["reference_error"].get<std::string>()) != std::string::npos);
        }
        ++ran;
    }
    CHECK(ran == 2);
}
