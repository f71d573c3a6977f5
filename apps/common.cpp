#include "apps/common.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/mmap.h"
#include "models/gguf_meta.h"

namespace moelite::app {

void add_model_options(cxxopts::Options& opts) {
    opts.add_options()("m,model", "GGUF model file", cxxopts::value<std::string>())(
        "t,threads", "CPU threads (default: all)", cxxopts::value<int>()->default_value("0"))(
        "c,ctx", "context length (default: the model's, at most 4096)", cxxopts::value<int64_t>()->default_value("0"))(
        "b,batch", "prompt tokens per forward pass", cxxopts::value<int64_t>()->default_value("512"))(
        "cache-type", "KV cache type: f16, f32 or q8_0", cxxopts::value<std::string>()->default_value("f16"))(
        "no-repack", "keep every weight in the file's layout, memory-mapped (no copy at load, interleaved or not)");
}

LoadedModel load_model(const cxxopts::ParseResult& args) {
    if (!args.count("model")) fail("-m/--model is required");
    const int threads = args["threads"].as<int>();
    if (threads < 0 || threads > 1024) fail("--threads must be between 0 and 1024");
    LoadedModel lm;
    CpuBackendOptions cpu_options;
    cpu_options.n_threads = threads;
    cpu_options.adopt_weights = !args.count("no-repack");
    lm.cpu = std::make_unique<CpuBackend>(cpu_options);
    lm.model = Model::load(args["model"].as<std::string>(), *lm.cpu);
    return lm;
}

SessionOptions session_options(const cxxopts::ParseResult& args) {
    SessionOptions so;
    so.n_ctx = args["ctx"].as<int64_t>();
    if (so.n_ctx < 0 || so.n_ctx > (int64_t(1) << 24)) fail("--ctx is out of range");
    so.n_batch = args["batch"].as<int64_t>();
    if (so.n_batch <= 0 || so.n_batch > 65536) fail("--batch must be between 1 and 65536");
    const std::string ct = args["cache-type"].as<std::string>();
    auto t = dtype_from_name(ct);
    if (!t || (*t != DType::F16 && *t != DType::F32 && *t != DType::Q8_0))
        fail("--cache-type must be f16, f32 or q8_0 (got '%s')", ct.c_str());
    so.cache_type = *t;
    return so;
}

void add_sampling_options(cxxopts::Options& opts) {
    opts.add_options("sampling")("temp", "temperature (0: greedy)", cxxopts::value<float>())(
        "top-k", "top-k (0: off)", cxxopts::value<int>())("top-p", "top-p (1: off)", cxxopts::value<float>())(
        "min-p", "min-p (0: off)", cxxopts::value<float>())("repeat-penalty", "repetition penalty (1: off)",
                                                            cxxopts::value<float>())(
        "presence-penalty", "presence penalty", cxxopts::value<float>())("frequency-penalty", "frequency penalty",
                                                                         cxxopts::value<float>())(
        "repeat-last-n", "tokens the penalties look back over", cxxopts::value<int>())(
        "seed", "random seed (same seed, same text)", cxxopts::value<uint64_t>());
}

SamplerParams sampling_params(const cxxopts::ParseResult& args, const Model& model) {
    const bool r1 = model.chat_template().find("<think>") != std::string::npos ||
                    model.file().opt_string("general.name").value_or("").find("R1") != std::string::npos;
    SamplerParams p = r1 ? SamplerParams::deepseek_r1() : SamplerParams();
    // The file's recommended settings (general.sampling.*) over the defaults, the flags over both.
    apply_sampling_metadata(model.file(), context_length(model, session_options(args)), &p);
    if (args.count("temp")) p.temperature = args["temp"].as<float>();
    if (args.count("top-k")) p.top_k = args["top-k"].as<int>();
    if (args.count("top-p")) p.top_p = args["top-p"].as<float>();
    if (args.count("min-p")) p.min_p = args["min-p"].as<float>();
    if (args.count("repeat-penalty")) p.repeat_penalty = args["repeat-penalty"].as<float>();
    if (args.count("presence-penalty")) p.presence_penalty = args["presence-penalty"].as<float>();
    if (args.count("frequency-penalty")) p.frequency_penalty = args["frequency-penalty"].as<float>();
    if (args.count("repeat-last-n")) p.penalty_last_n = args["repeat-last-n"].as<int>();
    if (args.count("seed")) p.seed = args["seed"].as<uint64_t>();
    if (!(p.top_p > 0.0f) || p.min_p < 0.0f || p.min_p > 1.0f || !(p.repeat_penalty > 0.0f) || p.penalty_last_n < 0)
        fail("sampling flags out of range");
    return p;
}

void write_file_atomically(const std::string& path, const void* data, size_t bytes) {
    require_replaceable_file(path);
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail("%s: cannot create: %s", tmp.c_str(), std::strerror(errno));
    const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        std::remove(tmp.c_str());
        fail("%s: cannot write: %s", path.c_str(), std::strerror(e));
    }
}

}  // namespace moelite::app
