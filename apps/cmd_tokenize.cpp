// `moelite tokenize`: text to token ids (or ids back to text) with a model's
// tokenizer, for checking what the model sees.
//
//   moelite tokenize --tokenizer tokenizer.json [--config tokenizer_config.json]
//                    [--json] [--bos] [--no-special] [--decode] (TEXT | --file F)
//
// Without --config, a tokenizer_config.json next to tokenizer.json is used if
// present. Output: one "id -> 'piece'" line per token, or with --json one
// line holding a JSON array of the ids. --decode reads ids (separated by
// spaces, commas, or as a JSON array) and writes the decoded bytes exactly as
// they are (with --json: {"text": ...}).
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/commands.h"
#include "core/error.h"
#include "models/model.h"
#include "models/tokenizer.h"

namespace moelite::app {

namespace {

std::string read_input(const std::string& file) {
    if (file == "-") {
        std::ostringstream s;
        s << std::cin.rdbuf();
        return s.str();
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) fail("%s: cannot open", file.c_str());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<int32_t> parse_ids(const std::string& text) {
    std::vector<int32_t> ids;
    std::string token;
    auto flush = [&] {
        if (token.empty()) return;
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(token, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != token.size() || v < INT32_MIN || v > INT32_MAX) fail("'%s' is not a token id", token.c_str());
        ids.push_back(int32_t(v));
        token.clear();
    };
    for (char c : text) {
        if (c == ' ' || c == ',' || c == '\n' || c == '\t' || c == '\r' || c == '[' || c == ']') {
            flush();
        } else {
            token.push_back(c);
        }
    }
    flush();
    return ids;
}

// A piece for display: C-style escapes for control bytes and quotes.
std::string escaped(const std::string& piece) {
    std::string out;
    for (char c : piece) {
        const auto u = uint8_t(c);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\\' || c == '\'') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

int run_tokenize(int argc, char** argv) {
    cxxopts::Options options(argv[0], "Tokenize text (or decode token ids) with a model's tokenizer");
    options.positional_help("TEXT");
    // clang-format off
    options.add_options()
        ("tokenizer", "Hugging Face tokenizer.json", cxxopts::value<std::string>())
        ("config", "tokenizer_config.json (default: next to --tokenizer, if there)", cxxopts::value<std::string>())
        ("m,model", "GGUF model file", cxxopts::value<std::string>())
        ("f,file", "read the input from a file ('-': standard input)", cxxopts::value<std::string>())
        ("bos", "prepend BOS")
        ("no-special", "treat special tokens written in the text as plain text")
        ("decode", "the input is token ids: print the text they decode to")
        ("json", "print the ids as one line, a JSON array (with --decode: {\"text\": ...})")
        ("text", "the input", cxxopts::value<std::string>())
        ("h,help", "show this help");
    // clang-format on
    options.parse_positional({"text"});
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", options.help().c_str());
        return 0;
    }
    if (args.count("model") == args.count("tokenizer")) fail("give either -m FILE.gguf or --tokenizer tokenizer.json");
    if (args.count("text") == args.count("file")) fail("give either TEXT or --file F");

    std::optional<Tokenizer> loaded;
    if (args.count("model")) {
        const std::string path = args["model"].as<std::string>();
        loaded = tokenizer_from_gguf(*GgufFile::open(path));
        if (!loaded) fail("%s: the file has no tokenizer (tokenizer.ggml.model is \"none\")", path.c_str());
    } else {
        const std::string path = args["tokenizer"].as<std::string>();
        std::string config;
        if (args.count("config")) {
            config = args["config"].as<std::string>();
        } else {
            const auto sibling = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
            if (std::filesystem::exists(sibling)) config = sibling.string();
        }
        loaded = Tokenizer::from_hf_files(path, config);
    }
    const Tokenizer& tokenizer = *loaded;
    const std::string input =
        args.count("file") ? read_input(args["file"].as<std::string>()) : args["text"].as<std::string>();
    const bool as_json = args.count("json") > 0;

    if (args.count("decode")) {
        const std::string text = tokenizer.decode(parse_ids(input));
        if (as_json) {
            std::printf(
                "%s\n",
                nlohmann::json{{"text", text}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else {
            std::fwrite(text.data(), 1, text.size(), stdout);
        }
        return 0;
    }
    const std::vector<int32_t> ids = tokenizer.encode(input, args.count("bos") > 0, args.count("no-special") == 0);
    // Built in one buffer and written at once: a long document's millions of
    // ids would otherwise spend far longer in printf than in the tokenizer.
    std::string out;
    if (as_json) {
        // One line, a JSON array of the ids.
        out.reserve(ids.size() * 7 + 3);
        out += '[';
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) out += ',';
            out += std::to_string(ids[i]);
        }
        out += "]\n";
    } else {
        out.reserve(ids.size() * 20);
        char num[16];
        for (int32_t id : ids) {
            std::snprintf(num, sizeof num, "%6d", id);
            out += num;
            out += " -> '";
            out += escaped(tokenizer.token_to_piece(id));
            out += "'\n";
        }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

const CommandRegistration registration("tokenize", "text to token ids and back, with a model's tokenizer",
                                       run_tokenize);

}  // namespace

}  // namespace moelite::app
