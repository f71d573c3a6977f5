// `moelite synth --preset NAME -o OUT.gguf [--type T] [--layers N]`: a GGUF
// file with the exact shapes and metadata of a real model and random weights,
// for benchmarks and demos (real weights cannot be downloaded everywhere).
// Tensor types come from the converter's quantization recipe (--type q4_k_m
// is llama.cpp's Q4_K_M mix, fallbacks included), so a synthetic file has the
// size and layout of a converted one.
#include <algorithm>
#include <cstdio>
#include <cxxopts.hpp>
#include <string>

#include "apps/commands.h"
#include "convert/quant_recipe.h"
#include "core/error.h"
#include "models/synth.h"

namespace moelite::app {
namespace {

int run_synth(int argc, char** argv) {
    cxxopts::Options opts("moelite synth", "Write a random-weight GGUF model with the shapes of a real one.");
    opts.add_options()("preset", "model shape: " + synth_preset_names(), cxxopts::value<std::string>())(
        "o,output", "output GGUF file", cxxopts::value<std::string>())(
        "type", "weight type or mix: " + recipe_type_names(), cxxopts::value<std::string>()->default_value("q4_k_m"))(
        "layers", "number of layers (default: the preset's)", cxxopts::value<int64_t>()->default_value("0"))(
        "tokenizer",
        "byte: a byte-level tokenizer with DeepSeek-R1's special tokens and chat template, so the "
        "model can chat; none: token ids only",
        cxxopts::value<std::string>()->default_value("byte"))(
        "seed", "random seed", cxxopts::value<uint64_t>()->default_value("1"))("h,help", "show this help");
    auto args = opts.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", opts.help().c_str());
        return 0;
    }
    if (!args.count("preset") || !args.count("output")) fail("--preset and -o/--output are required");
    const std::string preset = args["preset"].as<std::string>();
    auto hp = synth_preset(preset);
    if (!hp) fail("unknown preset '%s' (known: %s)", preset.c_str(), synth_preset_names().c_str());
    const int64_t layers = args["layers"].as<int64_t>();
    if (layers < 0 || layers > 1000) fail("--layers is out of range");
    if (layers > 0) {
        hp->n_layer = layers;
        hp->n_layer_dense_lead = std::min(hp->n_layer_dense_lead, layers);
    }
    const QuantRecipe recipe = recipe_from_name(args["type"].as<std::string>());
    const RecipeModel recipe_shape = recipe_model(*hp);
    SynthOptions so;
    so.type = recipe.base;
    so.file_type = uint32_t(recipe.file_type);
    std::vector<std::string> notes;
    so.tensor_type = [&](const std::string& name, const std::vector<int64_t>& ne) {
        TypeChoice c = recipe_choose(recipe, recipe_shape, name, ne);
        if (!c.note.empty()) notes.push_back(c.note);
        return c.type;
    };
    so.seed = args["seed"].as<uint64_t>();
    so.name = preset + " (random weights)";
    const std::string tokenizer = args["tokenizer"].as<std::string>();
    if (tokenizer == "byte") {
        so.tokenizer = synth_demo_tokenizer();
    } else if (tokenizer != "none") {
        fail("--tokenizer must be byte or none (got '%s')", tokenizer.c_str());
    }
    const std::string out = args["output"].as<std::string>();
    synth_write_model(out, *hp, so);
    if (!notes.empty())
        std::fprintf(stderr, "moelite synth: %zu tensors in a fallback type, as llama.cpp's quantizer does (%s%s)\n",
                     notes.size(), notes.front().c_str(), notes.size() > 1 ? ", ..." : "");
    std::fprintf(stderr, "moelite synth: wrote %s (%s, %lld layers, %s)\n", out.c_str(), preset.c_str(),
                 (long long)hp->n_layer, recipe.name.c_str());
    return 0;
}

CommandRegistration reg("synth", "write a random-weight model with the shapes of a real one", run_synth);

}  // namespace
}  // namespace moelite::app
