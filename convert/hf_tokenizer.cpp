#include "convert/hf_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moelite {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

json read_json(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open", path.c_str());
    std::ostringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded()) fail("%s: not valid JSON", path.c_str());
    if (!j.is_object()) fail("%s: expected a JSON object", path.c_str());
    return j;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// llama.cpp treats added tokens that look like markers as control tokens even
// when tokenizer.json does not flag them special.
bool looks_special(const std::string& t) {
    if (t == "<pad>" || t == "<mask>") return true;
    if (starts_with(t, "<|") && ends_with(t, "|>")) return true;
    if (starts_with(t, "<\xef\xbd\x9c") && ends_with(t, "\xef\xbd\x9c>")) return true;  // <｜ ... ｜>
    if (starts_with(t, "<unused") && ends_with(t, ">")) return true;
    return false;
}

// The content of a tokenizer_config.json special-token entry: a string or {"content": ...}.
std::optional<std::string> token_content(const json& cfg, const char* key) {
    if (!cfg.contains(key)) return std::nullopt;
    const json& e = cfg.at(key);
    if (e.is_string()) return e.get<std::string>();
    if (e.is_object() && e.contains("content") && e.at("content").is_string()) return e.at("content").get<std::string>();
    return std::nullopt;
}

void collect_split_patterns(const json& pre, std::vector<std::string>& out) {
    if (!pre.is_object()) return;
    const std::string type = pre.value("type", "");
    if (type == "Sequence" && pre.contains("pretokenizers") && pre.at("pretokenizers").is_array()) {
        for (const json& p : pre.at("pretokenizers")) collect_split_patterns(p, out);
    } else if (type == "Split" && pre.contains("pattern") && pre.at("pattern").is_object()) {
        const json& pat = pre.at("pattern");
        if (pat.contains("Regex") && pat.at("Regex").is_string()) out.push_back(pat.at("Regex").get<std::string>());
        else if (pat.contains("String") && pat.at("String").is_string()) out.push_back(pat.at("String").get<std::string>());
    }
}

// The GPT-4-style split shared by Qwen2 and Llama 3; they differ only in how
// digits group (one by one, or up to three).
const char* const kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string detect_pre(const json& pre) {
    std::vector<std::string> splits;
    collect_split_patterns(pre, splits);
    if (splits.size() == 1 && splits[0] == kQwen2Split) return "qwen2";
    if (splits.size() == 1 && splits[0] == kLlama3Split) return "llama-bpe";
    // DeepSeek-V3: digits in threes, then CJK runs, then its own word split.
    if (splits.size() == 3 && splits[0] == R"(\p{N}{1,3})" && starts_with(splits[1], "[\xe4\xb8\x80-") &&
        splits[2].find(R"(\p{M})") != std::string::npos)
        return "deepseek-v3";
    // DeepSeek LLM / V2: newlines alone first, digits as whole runs.
    if (splits.size() >= 4 && splits[0] == "[\r\n]") {
        for (const std::string& s : splits)
            if (s == R"(\p{N}+)") return "deepseek-llm";
    }
    return "";
}

}  // namespace

std::string hf_tokenizer_detect_pre(const std::string& pre_tokenizer_json) {
    json j = json::parse(pre_tokenizer_json, nullptr, false);
    if (j.is_discarded()) return "";
    return detect_pre(j);
}

HfTokenizer hf_tokenizer_load(const std::string& dir, int64_t n_vocab, std::optional<int64_t> config_bos,
                              std::optional<int64_t> config_eos) {
    const fs::path tok_path = fs::path(dir) / "tokenizer.json";
    const std::string tp = tok_path.string();
    const json tj = read_json(tok_path);
    HfTokenizer tok;

    if (!tj.contains("model") || !tj.at("model").is_object()) fail("%s: missing 'model'", tp.c_str());
    const json& model = tj.at("model");
    const std::string model_type = model.value("type", "");
    if (model_type != "BPE")
        fail("%s: tokenizer model '%s' is not supported (only byte-level BPE)", tp.c_str(), model_type.c_str());
    if (!model.contains("vocab") || !model.at("vocab").is_object()) fail("%s: missing 'model.vocab'", tp.c_str());

    tok.pre = tj.contains("pre_tokenizer") ? detect_pre(tj.at("pre_tokenizer")) : "";
    if (tok.pre.empty())
        fail("%s: unknown pre-tokenizer (known: qwen2, llama-bpe, deepseek-v3, deepseek-llm); refusing to guess, "
             "since a wrong one would tokenize differently",
             tp.c_str());

    // id -> text, from the BPE vocab and then the added tokens (which may reuse ids).
    std::unordered_map<int64_t, std::string> by_id;
    std::unordered_map<int64_t, TokenType> added_type;
    int64_t max_id = -1;
    auto put = [&](int64_t id, const std::string& text) {
        if (id < 0 || id > (int64_t(1) << 31)) fail("%s: token '%s' has id %lld, out of range", tp.c_str(), text.c_str(), (long long)id);
        by_id[id] = text;
        max_id = std::max(max_id, id);
    };
    for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
        if (!it.value().is_number_integer()) fail("%s: vocab entry '%s' has no integer id", tp.c_str(), it.key().c_str());
        put(it.value().get<int64_t>(), it.key());
    }
    std::vector<std::pair<std::string, int64_t>> added_list;
    if (tj.contains("added_tokens")) {
        if (!tj.at("added_tokens").is_array()) fail("%s: 'added_tokens' must be an array", tp.c_str());
        for (const json& a : tj.at("added_tokens")) {
            if (!a.is_object() || !a.contains("id") || !a.at("id").is_number_integer() || !a.contains("content") ||
                !a.at("content").is_string())
                fail("%s: an added token lacks an integer 'id' or a string 'content'", tp.c_str());
            const int64_t id = a.at("id").get<int64_t>();
            const std::string content = a.at("content").get<std::string>();
            put(id, content);
            const bool special = a.value("special", false);
            added_type[id] = special || looks_special(content) ? TokenType::Control : TokenType::UserDefined;
            added_list.emplace_back(content, id);
        }
    }
    if (max_id < 0) fail("%s: the vocabulary is empty", tp.c_str());
    if (max_id >= n_vocab)
        fail("%s: token id %lld is past the model's vocab_size %lld (config.json): the model has no embedding for it",
             tp.c_str(), (long long)max_id, (long long)n_vocab);
    tok.n_real_tokens = int64_t(by_id.size());
    tok.tokens.resize(size_t(n_vocab));
    tok.token_types.resize(size_t(n_vocab));
    for (int64_t i = 0; i < n_vocab; ++i) {
        auto it = by_id.find(i);
        if (it == by_id.end()) {
            tok.tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]";
            tok.token_types[size_t(i)] = int32_t(TokenType::Unused);
            continue;
        }
        tok.tokens[size_t(i)] = it->second;
        auto at = added_type.find(i);
        tok.token_types[size_t(i)] = int32_t(at == added_type.end() ? TokenType::Normal : at->second);
    }

    if (model.contains("merges")) {
        const json& merges = model.at("merges");
        if (!merges.is_array()) fail("%s: 'model.merges' must be an array", tp.c_str());
        tok.merges.reserve(merges.size());
        for (const json& m : merges) {
            if (m.is_string()) {
                tok.merges.push_back(m.get<std::string>());
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                std::string s;
                for (int side = 0; side < 2; ++side) {
                    for (char c : m[size_t(side)].get<std::string>()) {
                        if (c == ' ') s += "\xc4\xa0";  // U+0120, llama.cpp's stand-in for a space in a piece
                        else s += c;
                    }
                    if (side == 0) s += ' ';
                }
                tok.merges.push_back(std::move(s));
            } else {
                fail("%s: a merge is neither \"a b\" nor [\"a\", \"b\"]", tp.c_str());
            }
        }
    }

    // Special tokens and whether to add BOS/EOS: tokenizer_config.json first,
    // the post-processor template and config.json as fallbacks.
    json cfg = json::object();
    const fs::path cfg_path = fs::path(dir) / "tokenizer_config.json";
    if (fs::exists(cfg_path)) cfg = read_json(cfg_path);
    auto id_of = [&](const std::optional<std::string>& content) -> std::optional<uint32_t> {
        if (!content) return std::nullopt;
        for (const auto& [text, id] : added_list)
            if (text == *content) return uint32_t(id);
        return std::nullopt;
    };
    const std::optional<std::string> bos_text = token_content(cfg, "bos_token");
    const std::optional<std::string> eos_text = token_content(cfg, "eos_token");
    tok.bos_id = id_of(bos_text);
    tok.eos_id = id_of(eos_text);
    tok.unk_id = id_of(token_content(cfg, "unk_token"));
    tok.pad_id = id_of(token_content(cfg, "pad_token"));
    if (!tok.bos_id && config_bos && *config_bos >= 0 && *config_bos < n_vocab) tok.bos_id = uint32_t(*config_bos);
    if (!tok.eos_id && config_eos && *config_eos >= 0 && *config_eos < n_vocab) tok.eos_id = uint32_t(*config_eos);

    if (tj.contains("post_processor") && tj.at("post_processor").is_object()) {
        const json& pp = tj.at("post_processor");
        if (pp.value("type", "") == "TemplateProcessing" && pp.contains("single") && pp.at("single").is_array()) {
            const json& single = pp.at("single");
            auto special_id = [](const json& item) -> std::string {
                if (item.is_object() && item.contains("SpecialToken") && item.at("SpecialToken").is_object())
                    return item.at("SpecialToken").value("id", "");
                return "";
            };
            if (single.size() > 1) {
                const std::string first = special_id(single.front());
                if (!first.empty()) tok.add_bos = bos_text && first == *bos_text;
                const std::string last = special_id(single.back());
                if (!last.empty() && eos_text && last == *eos_text) tok.add_eos = true;
            }
        }
    }
    if (cfg.contains("add_bos_token") && cfg.at("add_bos_token").is_boolean()) tok.add_bos = cfg.at("add_bos_token").get<bool>();
    if (cfg.contains("add_eos_token") && cfg.at("add_eos_token").is_boolean()) tok.add_eos = cfg.at("add_eos_token").get<bool>();

    // The chat template: tokenizer_config.json, else chat_template.jinja.
    if (cfg.contains("chat_template")) {
        const json& ct = cfg.at("chat_template");
        if (ct.is_string()) {
            tok.chat_template = ct.get<std::string>();
        } else if (ct.is_array()) {
            for (const json& t : ct) {
                if (!t.is_object() || !t.contains("name") || !t.contains("template") || !t.at("name").is_string() ||
                    !t.at("template").is_string())
                    fail("%s: a chat_template entry lacks 'name' or 'template'", cfg_path.c_str());
                const std::string name = t.at("name").get<std::string>();
                if (name == "default") tok.chat_template = t.at("template").get<std::string>();
                else tok.named_templates.emplace_back(name, t.at("template").get<std::string>());
            }
        } else if (!ct.is_null()) {
            fail("%s: 'chat_template' must be a string or a list", cfg_path.c_str());
        }
    } else if (fs::exists(fs::path(dir) / "chat_template.jinja")) {
        std::ifstream in(fs::path(dir) / "chat_template.jinja", std::ios::binary);
        std::ostringstream ss;
        ss << in.rdbuf();
        tok.chat_template = ss.str();
    }
    return tok;
}

std::vector<GgufKV> hf_tokenizer_metadata(const HfTokenizer& tok) {
    std::vector<GgufKV> kv;
    kv.push_back({"tokenizer.ggml.model", GgufValue("gpt2")});
    kv.push_back({"tokenizer.ggml.pre", GgufValue(tok.pre)});
    kv.push_back({"tokenizer.ggml.tokens", GgufValue(tok.tokens)});
    kv.push_back({"tokenizer.ggml.token_type", GgufValue(tok.token_types)});
    if (!tok.merges.empty()) kv.push_back({"tokenizer.ggml.merges", GgufValue(tok.merges)});
    if (tok.bos_id) kv.push_back({"tokenizer.ggml.bos_token_id", GgufValue(*tok.bos_id)});
    if (tok.eos_id) kv.push_back({"tokenizer.ggml.eos_token_id", GgufValue(*tok.eos_id)});
    if (tok.unk_id) kv.push_back({"tokenizer.ggml.unknown_token_id", GgufValue(*tok.unk_id)});
    if (tok.pad_id) kv.push_back({"tokenizer.ggml.padding_token_id", GgufValue(*tok.pad_id)});
    if (tok.add_bos) kv.push_back({"tokenizer.ggml.add_bos_token", GgufValue(*tok.add_bos)});
    if (tok.add_eos) kv.push_back({"tokenizer.ggml.add_eos_token", GgufValue(*tok.add_eos)});
    if (!tok.chat_template.empty()) kv.push_back({"tokenizer.chat_template", GgufValue(tok.chat_template)});
    if (!tok.named_templates.empty()) {
        std::vector<std::string> names;
        for (const auto& [name, text] : tok.named_templates) {
            names.push_back(name);
            kv.push_back({"tokenizer.chat_template." + name, GgufValue(text)});
        }
        kv.push_back({"tokenizer.chat_templates", GgufValue(names)});
    }
    return kv;
}

}  // namespace moelite
