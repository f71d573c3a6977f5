// `moelite convert HF_DIR -o OUT.gguf --type TYPE`: a Hugging Face checkpoint
// (config.json, safetensors shards, optional tokenizer files) to a GGUF file,
// quantized on the way (convert/converter.h does the work).
#include <cstdio>
#include <cxxopts.hpp>
#include <string>

#include "apps/commands.h"
#include "apps/convert_cli.h"
#include "convert/converter.h"

namespace moelite::app {
namespace {

int run_convert(int argc, char** argv) {
    cxxopts::Options options("moelite convert",
                             "Convert a Hugging Face checkpoint (BF16/F16/F32, or DeepSeek's FP8 with block scales) "
                             "to a GGUF file, quantizing as it streams.");
    options.positional_help("HF_DIR -o OUT.gguf [--type TYPE]");
    // clang-format off
    options.add_options()
        ("o,output", "the GGUF file to write", cxxopts::value<std::string>())
        ("type", "file type: " + recipe_type_names(), cxxopts::value<std::string>()->default_value("f16"));
    // clang-format on
    add_recipe_options(options);
    // clang-format off
    options.add_options()
        ("h,help", "print this help")
        ("dir", "the checkpoint directory", cxxopts::value<std::string>());
    // clang-format on
    options.parse_positional({"dir"});
    const auto args = options.parse(argc, argv);
    if (args.count("help")) {
        std::printf("%s\n", options.help().c_str());
        return 0;
    }
    if (!args.count("dir") || !args.count("output")) {
        std::fprintf(stderr, "moelite convert: need a checkpoint directory and -o OUT.gguf (see --help)\n");
        return 2;
    }
    ConvertOptions opt = recipe_options_from(args, args["type"].as<std::string>());
    if (!args.count("quiet")) opt.progress = make_progress_printer("convert");
    opt.cancel = install_interrupt_flag();
    const ConvertReport report =
        convert_checkpoint(args["dir"].as<std::string>(), args["output"].as<std::string>(), opt);
    print_report(report);
    return 0;
}

const CommandRegistration kRegistration("convert", "convert a Hugging Face checkpoint to a (quantized) GGUF file",
                                        run_convert);

}  // namespace
}  // namespace moelite::app
