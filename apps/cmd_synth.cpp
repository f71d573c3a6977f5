// `moelite synth --preset NAME -o OUT.gguf [--type T] [--layers N]`: a GGUF
// file with the exact shapes and metadata of a real model and random weights,
// for benchmarks and demos (real weights cannot be downloaded everywhere).
#include <algorithm>
#include <cstdio>
#include <string>

#include <cxxopts.hpp>

#include "apps/commands.h"
#include "core/error.h"
#include "models/synth.h"

namespace moelite::app {
namespace {

int run_synth(int argc, char** argv) {
    cxxopts::Options opts("moelite synth", "Write a random-weight GGUF model with the shapes of a real one.");
    opts.add_options()("preset", "model shape: " + synth_preset_names(), cxxopts::value<std::string>())(
        "o,output", "output GGUF file", cxxopts::value<std::string>())(
        "type", "weight type (f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k, ...)",
        cxxopts::value<std::string>()->default_value("q4_k"))(
        "layers", "number of layers (default: the preset's)", cxxopts::value<int64_t>()->default_value("0"))(
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
    const std::string type_name = args["type"].as<std::string>();
    auto type = dtype_from_name(type_name);
    if (!type) fail("unknown type '%s'", type_name.c_str());
    SynthOptions so;
    so.type = *type;
    so.seed = args["seed"].as<uint64_t>();
    so.name = preset + " (random weights)";
    if (preset == "demo") so.tokenizer = synth_demo_tokenizer();  // a demo has to chat
    synth_write_model(args["output"].as<std::string>(), *hp, so);
    std::fprintf(stderr, "moelite synth: wrote %s (%s, %lld layers, %s)\n", args["output"].as<std::string>().c_str(),
                 preset.c_str(), (long long)hp->n_layer, dtype_name(*type));
    return 0;
}

CommandRegistration reg("synth", "write a random-weight model with the shapes of a real one", run_synth);

}  // namespace
}  // namespace moelite::app
