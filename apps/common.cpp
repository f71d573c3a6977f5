#include "apps/common.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "core/error.h"

namespace moelite::app {

void add_model_options(cxxopts::Options& opts) {
    opts.add_options()("m,model", "GGUF model file", cxxopts::value<std::string>())(
        "t,threads", "CPU threads (default: all)", cxxopts::value<int>()->default_value("0"))(
        "c,ctx", "context length (default: the model's, at most 4096)", cxxopts::value<int64_t>()->default_value("0"))(
        "b,batch", "prompt tokens per forward pass", cxxopts::value<int64_t>()->default_value("512"))(
        "cache-type", "KV cache type: f16, f32 or q8_0", cxxopts::value<std::string>()->default_value("f16"));
}

LoadedModel load_model(const cxxopts::ParseResult& args) {
    if (!args.count("model")) fail("-m/--model is required");
    const int threads = args["threads"].as<int>();
    if (threads < 0 || threads > 1024) fail("--threads must be between 0 and 1024");
    LoadedModel lm;
    lm.cpu = std::make_unique<CpuBackend>(CpuBackendOptions{threads, std::nullopt});
    lm.model = Model::load(args["model"].as<std::string>(), *lm.cpu);
    return lm;
}

SessionOptions session_options(const cxxopts::ParseResult& args, const Model& model) {
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
    (void)model;
    return so;
}

void write_file_atomically(const std::string& path, const void* data, size_t bytes) {
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
