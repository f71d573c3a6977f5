// `moelite logits -m FILE --tokens 1,2,3 --out FILE.f32`: the f32 logits of
// every position (raw little-endian, n_tokens x n_vocab, row i predicts token
// i + 1), the tokens evaluated as one batch or, with --one-by-one, one at a
// time through the KV cache. For checking against reference implementations.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <cxxopts.hpp>

#include "apps/commands.h"
#include "apps/common.h"
#include "core/error.h"
#include "models/session.h"

namespace moelite::app {
namespace {

std::vector<int32_t> parse_tokens(const std::string& text) {
    std::vector<int32_t> ids;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used == 0 || used != item.size() || v < 0 || v > INT32_MAX) fail("--tokens: '%s' is not a token id", item.c_str());
        ids.push_back(int32_t(v));
    }
    if (ids.empty()) fail("--tokens: no token ids given");
    return ids;
}

int run_logits(int argc, char** argv) {
    cxxopts::Options opts("moelite logits", "Write the logits of every position of a token sequence.");
    add_model_options(opts);
    opts.add_options()("tokens", "comma-separated token ids", cxxopts::value<std::string>())(
        "out", "output file (raw f32, n_tokens x n_vocab)", cxxopts::value<std::string>())(
        "one-by-one", "evaluate one token at a time through the KV cache")("h,help", "show this help");
    auto args = opts.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", opts.help().c_str());
        return 0;
    }
    if (!args.count("tokens") || !args.count("out")) fail("--tokens and --out are required");
    const std::vector<int32_t> tokens = parse_tokens(args["tokens"].as<std::string>());
    LoadedModel lm = load_model(args);
    SessionOptions so = session_options(args);
    if (so.n_ctx < int64_t(tokens.size())) so.n_ctx = int64_t(tokens.size());
    Session session(lm.model, *lm.cpu, so);

    std::vector<float> logits;
    if (args.count("one-by-one")) {
        std::vector<float> row;
        for (int32_t t : tokens) {
            session.eval(std::span<const int32_t>(&t, 1), false, &row);
            logits.insert(logits.end(), row.begin(), row.end());
        }
    } else {
        session.eval(tokens, true, &logits);
    }
    write_file_atomically(args["out"].as<std::string>(), logits.data(), logits.size() * sizeof(float));
    std::fprintf(stderr, "moelite logits: %zu tokens x %lld logits -> %s\n", tokens.size(),
                 (long long)lm.model->hparams().n_vocab, args["out"].as<std::string>().c_str());
    return 0;
}

CommandRegistration reg("logits", "write the logits of every position of a token sequence", run_logits);

}  // namespace
}  // namespace moelite::app
