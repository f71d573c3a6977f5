// Loading a Hugging Face tokenizer.json (+ tokenizer_config.json) into a
// Tokenizer. Only what the DeepSeek family uses is accepted: a BPE model
// without byte fallback, no normalizer or NFC, a Sequence of Split regexes of
// a known family followed by ByteLevel, a ByteLevel decoder. Anything else is
// an Error naming the file, rather than a tokenizer that silently differs.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "models/tokenizer_impl.h"

namespace moelite {

namespace {

using json = nlohmann::json;

json read_json(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open", path.c_str());
    std::ostringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof()) fail("%s: read error", path.c_str());
    try {
        return json::parse(text.str());
    } catch (const json::exception& e) {
        fail("%s: not valid JSON: %s", path.c_str(), e.what());
    }
}

// The member `key` of an object, or nullptr when absent or null.
const json* member(const json& object, const char* key) {
    if (!object.is_object()) return nullptr;
    const auto it = object.find(key);
    return (it == object.end() || it->is_null()) ? nullptr : &*it;
}

std::string type_of(const json& object) {
    const json* t = member(object, "type");
    return (t && t->is_string()) ? t->get<std::string>() : std::string();
}

bool get_bool(const json& object, const char* key, bool fallback, const std::string& path) {
    const json* v = member(object, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail("%s: '%s' is not true or false", path.c_str(), key);
    return v->get<bool>();
}

std::string get_string(const json& object, const char* key, const std::string& path, const char* where) {
    const json* v = member(object, key);
    if (!v || !v->is_string()) fail("%s: %s: '%s' is missing or not a string", path.c_str(), where, key);
    return v->get<std::string>();
}

std::string shorten(std::string s) {
    if (s.size() > 160) s = s.substr(0, 160) + "...";
    return s;
}

// True for NFC, false for no normalization; anything else is unsupported.
bool parse_normalizer(const json* normalizer, const std::string& path) {
    if (!normalizer) return false;
    const std::string type = type_of(*normalizer);
    if (type == "NFC") return true;
    if (type == "Sequence") {
        const json* list = member(*normalizer, "normalizers");
        if (!list || !list->is_array()) fail("%s: normalizer Sequence without 'normalizers'", path.c_str());
        bool nfc = false;
        for (const json& n : *list) nfc = parse_normalizer(&n, path) || nfc;
        return nfc;
    }
    fail("%s: normalizer '%s' is not supported (only NFC or none)", path.c_str(), type.c_str());
}

PreTokenizerKind parse_pre_tokenizer(const json* pre, const std::string& path) {
    if (!pre) fail("%s: no pre_tokenizer (a Sequence of Split regexes and ByteLevel is expected)", path.c_str());
    std::vector<const json*> steps;
    if (type_of(*pre) == "Sequence") {
        const json* list = member(*pre, "pretokenizers");
        if (!list || !list->is_array()) fail("%s: pre_tokenizer Sequence without 'pretokenizers'", path.c_str());
        for (const json& p : *list) steps.push_back(&p);
    } else {
        steps.push_back(pre);
    }
    std::vector<std::string> regexes;
    bool byte_level = false;
    for (const json* step : steps) {
        const std::string type = type_of(*step);
        if (byte_level)
            fail("%s: pre-tokenizer step '%s' after ByteLevel is not supported", path.c_str(), type.c_str());
        if (type == "Split") {
            const json* pattern = member(*step, "pattern");
            const json* regex = pattern ? member(*pattern, "Regex") : nullptr;
            if (!regex || !regex->is_string()) fail("%s: Split pre-tokenizer without a Regex pattern", path.c_str());
            const json* behavior = member(*step, "behavior");
            if (!behavior || *behavior != "Isolated" || get_bool(*step, "invert", false, path)) {
                fail("%s: Split pre-tokenizer must have behavior Isolated and invert false", path.c_str());
            }
            regexes.push_back(regex->get<std::string>());
        } else if (type == "ByteLevel") {
            if (get_bool(*step, "add_prefix_space", false, path) || get_bool(*step, "use_regex", true, path)) {
                fail("%s: ByteLevel pre-tokenizer with add_prefix_space or use_regex is not supported", path.c_str());
            }
            byte_level = true;
        } else {
            fail("%s: pre-tokenizer '%s' is not supported", path.c_str(), type.c_str());
        }
    }
    if (!byte_level) fail("%s: the pre-tokenizer has no ByteLevel step", path.c_str());
    const auto kind = pre_tokenizer_from_regexes(regexes);
    if (!kind) {
        fail(
            "%s: unknown pre-tokenizer regex sequence (%zu regexes, first '%s'): not one of the known families "
            "(qwen2, llama3, deepseek-v3, deepseek-llm)",
            path.c_str(), regexes.size(), regexes.empty() ? "" : shorten(regexes[0]).c_str());
    }
    return *kind;
}

// The text of a tokenizer_config.json token entry: "text" or {"content": "text"}.
std::optional<std::string> config_token(const json& config, const char* key) {
    const json* v = member(config, key);
    if (!v) return std::nullopt;
    if (v->is_string()) return v->get<std::string>();
    if (const json* c = member(*v, "content"); c && c->is_string()) return c->get<std::string>();
    return std::nullopt;
}

// The leading special token of a TemplateProcessing post-processor (possibly
// inside a Sequence), as an id, or -1.
int32_t template_bos(const json* post) {
    if (!post) return -1;
    const std::string type = type_of(*post);
    if (type == "Sequence") {
        if (const json* list = member(*post, "processors"); list && list->is_array()) {
            for (const json& p : *list) {
                if (const int32_t id = template_bos(&p); id >= 0) return id;
            }
        }
        return -1;
    }
    if (type != "TemplateProcessing") return -1;
    const json* single = member(*post, "single");
    if (!single || !single->is_array() || single->empty()) return -1;
    const json* special = member((*single)[0], "SpecialToken");
    const json* name = special ? member(*special, "id") : nullptr;
    const json* table = member(*post, "special_tokens");
    if (!name || !name->is_string() || !table) return -1;
    const json* entry = member(*table, name->get<std::string>().c_str());
    const json* ids = entry ? member(*entry, "ids") : nullptr;
    if (!ids || !ids->is_array() || ids->size() != 1 || !(*ids)[0].is_number_integer()) return -1;
    return (*ids)[0].get<int32_t>();
}

}  // namespace

Tokenizer Tokenizer::from_hf_files(const std::string& path, const std::string& config_path) {
    const json root = read_json(path);
    if (!root.is_object()) fail("%s: not a tokenizer.json (not a JSON object)", path.c_str());
    auto impl = std::make_shared<Impl>();
    impl->source = path;

    const json* model = member(root, "model");
    if (!model || !model->is_object()) fail("%s: no 'model'", path.c_str());
    if (const std::string type = type_of(*model); !type.empty() && type != "BPE") {
        fail("%s: model type '%s' is not supported (only BPE)", path.c_str(), type.c_str());
    }
    if (get_bool(*model, "byte_fallback", false, path)) fail("%s: BPE byte_fallback is not supported", path.c_str());
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        const json* v = member(*model, key);
        if (v && !(v->is_string() && v->get<std::string>().empty())) {
            fail("%s: BPE '%s' is not supported", path.c_str(), key);
        }
    }
    if (const json* d = member(*model, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0)) {
        fail("%s: BPE dropout is not supported", path.c_str());
    }
    impl->ignore_merges = get_bool(*model, "ignore_merges", false, path);
    impl->nfc = parse_normalizer(member(root, "normalizer"), path);
    impl->pre = parse_pre_tokenizer(member(root, "pre_tokenizer"), path);
    if (const json* decoder = member(root, "decoder"); decoder && type_of(*decoder) != "ByteLevel") {
        fail("%s: decoder '%s' is not supported (only ByteLevel)", path.c_str(), type_of(*decoder).c_str());
    }

    // Vocabulary and added tokens, into one id space.
    constexpr int64_t kMaxVocab = 1 << 24;
    const json* vocab = member(*model, "vocab");
    if (!vocab || !vocab->is_object()) fail("%s: model has no 'vocab' object", path.c_str());
    if (vocab->empty()) fail("%s: the model's vocab is empty", path.c_str());
    const json* added = member(root, "added_tokens");
    if (added && !added->is_array()) fail("%s: 'added_tokens' is not an array", path.c_str());
    int64_t max_id = -1;
    for (const auto& [text, id] : vocab->items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxVocab) {
            fail("%s: vocab entry '%s' has a bad id", path.c_str(), shorten(text).c_str());
        }
        max_id = std::max(max_id, id.get<int64_t>());
    }
    if (added) {
        for (const json& a : *added) {
            const json* id = member(a, "id");
            if (!id || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() >= kMaxVocab) {
                fail("%s: an added token has a missing or bad id", path.c_str());
            }
            max_id = std::max(max_id, id->get<int64_t>());
        }
    }
    if (max_id < 0) fail("%s: empty vocabulary", path.c_str());
    impl->texts.assign(size_t(max_id + 1), std::string());
    impl->types.assign(size_t(max_id + 1), TokenType::Unused);
    for (const auto& [text, id] : vocab->items()) {
        const size_t i = size_t(id.get<int64_t>());
        if (impl->types[i] != TokenType::Unused) fail("%s: token id %zu appears twice in the vocab", path.c_str(), i);
        impl->texts[i] = text;
        impl->types[i] = TokenType::Normal;
    }
    if (added) {
        std::unordered_map<int32_t, std::string> added_ids;
        for (const json& a : *added) {
            AddedToken t;
            t.id = member(a, "id")->get<int32_t>();
            t.content = get_string(a, "content", path, "added token");
            if (t.content.empty()) fail("%s: added token %d has empty content", path.c_str(), t.id);
            if (auto [it, fresh] = added_ids.emplace(t.id, t.content); !fresh && it->second != t.content)
                fail("%s: added tokens '%s' and '%s' have the same id %d", path.c_str(), shorten(it->second).c_str(),
                     shorten(t.content).c_str(), t.id);
            t.special = get_bool(a, "special", false, path);
            t.lstrip = get_bool(a, "lstrip", false, path);
            t.rstrip = get_bool(a, "rstrip", false, path);
            t.single_word = get_bool(a, "single_word", false, path);
            t.normalized = get_bool(a, "normalized", !t.special, path);
            impl->texts[t.id] = t.content;
            impl->types[t.id] = t.special ? TokenType::Control : TokenType::UserDefined;
            impl->added.push_back(std::move(t));
        }
    }

    const json* merges = member(*model, "merges");
    if (!merges || !merges->is_array()) fail("%s: model has no 'merges' array", path.c_str());
    std::vector<std::pair<std::string, std::string>> merge_texts;
    merge_texts.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
        const json& m = (*merges)[i];
        if (m.is_string()) {
            const std::string& s = m.get_ref<const std::string&>();
            const size_t space = s.find(' ');
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
                fail("%s: merge %zu ('%s') is not two tokens", path.c_str(), i, shorten(s).c_str());
            }
            merge_texts.emplace_back(s.substr(0, space), s.substr(space + 1));
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            merge_texts.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        } else {
            fail("%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path.c_str(), i);
        }
    }

    // Special ids and flags: tokenizer_config.json first, then what the
    // tokenizer.json itself says.
    json config = json::object();
    if (!config_path.empty()) {
        config = read_json(config_path);
        if (!config.is_object()) fail("%s: not a JSON object", config_path.c_str());
    }
    auto id_of = [&](const std::optional<std::string>& text, const char* what) -> int32_t {
        if (!text) return -1;
        for (size_t id = 0; id < impl->texts.size(); ++id) {
            if (impl->types[id] != TokenType::Unused && impl->texts[id] == *text) return int32_t(id);
        }
        MOELITE_LOG_WARN("%s: %s token '%s' is not in the vocabulary", config_path.c_str(), what, text->c_str());
        return -1;
    };
    const int32_t template_bos_id = template_bos(member(root, "post_processor"));
    impl->bos = id_of(config_token(config, "bos_token"), "BOS");
    if (impl->bos < 0 && template_bos_id >= 0 && size_t(template_bos_id) < impl->texts.size())
        impl->bos = template_bos_id;
    impl->eos = id_of(config_token(config, "eos_token"), "EOS");
    impl->pad = id_of(config_token(config, "pad_token"), "padding");
    auto find_known = [&](std::initializer_list<const char*> names) -> int32_t {
        for (const char* name : names) {
            for (const AddedToken& a : impl->added) {
                if (a.content == name) return a.id;
            }
        }
        return -1;
    };
    if (impl->bos < 0) {
        impl->bos = find_known({kDeepseekBeginOfSentence, "<|begin_of_text|>", "<s>"});
    }
    if (impl->eos < 0) {
        impl->eos = find_known({kDeepseekEndOfSentence, "<|end_of_text|>", "<|endoftext|>", "</s>"});
    }
    const bool template_adds_bos = template_bos_id >= 0 && template_bos_id == impl->bos;
    impl->add_bos = get_bool(config, "add_bos_token", template_adds_bos, config_path) && impl->bos >= 0;
    impl->add_eos = get_bool(config, "add_eos_token", false, config_path) && impl->eos >= 0;
    if (const json* t = member(config, "chat_template")) {
        if (t->is_string()) {
            impl->chat_template = t->get<std::string>();
        } else if (t->is_array()) {  // [{"name": ..., "template": ...}]: the default one
            for (const json& entry : *t) {
                const json* name = member(entry, "name");
                const json* text = member(entry, "template");
                if (name && *name == "default" && text && text->is_string())
                    impl->chat_template = text->get<std::string>();
            }
        }
        if (impl->chat_template.empty())
            MOELITE_LOG_WARN(
                "%s: chat_template is neither a string nor a list with a \"default\" template: no chat "
                "template",
                config_path.c_str());
    }

    impl->finalize(merge_texts);
    return Tokenizer(std::move(impl));
}

}  // namespace moelite
