// `moelite quantize IN.gguf OUT.gguf TYPE`: re-quantize a GGUF file with the
// same recipes as `moelite convert` (metadata kept, general.file_type updated).
#include <cstdio>
#include <cxxopts.hpp>
#include <string>

#include "apps/commands.h"
#include "apps/convert_cli.h"
#include "convert/converter.h"

namespace moelite::app {
namespace {

int run_quantize(int argc, char** argv) {
    const std::string about =
        "Re-quantize a GGUF file: each tensor is dequantized and quantized again with the "
        "recipe of TYPE (" +
        recipe_type_names() + ").";
    cxxopts::Options options("moelite quantize", about);
    options.positional_help("IN.gguf OUT.gguf TYPE");
    add_recipe_options(options);
    // clang-format off
    options.add_options()
        ("h,help", "print this help")
        ("input", "the GGUF file to read", cxxopts::value<std::string>())
        ("output", "the GGUF file to write", cxxopts::value<std::string>())
        ("type", "the file type", cxxopts::value<std::string>());
    // clang-format on
    options.parse_positional({"input", "output", "type"});
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", options.help().c_str());
        return 0;
    }
    if (!args.count("input") || !args.count("output") || !args.count("type")) {
        std::fprintf(stderr, "moelite quantize: need IN.gguf OUT.gguf TYPE (see --help)\n");
        return 2;
    }
    ConvertOptions opt = recipe_options_from(args, args["type"].as<std::string>());
    if (!args.count("quiet")) opt.progress = make_progress_printer("quantize");
    opt.cancel = install_interrupt_flag();
    const ConvertReport report = quantize_gguf(args["input"].as<std::string>(), args["output"].as<std::string>(), opt);
    print_report(report);
    return 0;
}

const CommandRegistration kRegistration("quantize", "re-quantize a GGUF file", run_quantize);

}  // namespace
}  // namespace moelite::app
