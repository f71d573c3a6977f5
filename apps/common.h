// Options and helpers shared by the commands that run a model: -m, --threads,
// --ctx, --batch, --cache-type; loading the model on the CPU backend.
#pragma once

#include <memory>
#include <string>

#include <cxxopts.hpp>

#include "backends/cpu/cpu_backend.h"
#include "models/model.h"
#include "models/sampler.h"
#include "models/session.h"

namespace moelite::app {

void add_model_options(cxxopts::Options& opts);

struct LoadedModel {
    std::unique_ptr<CpuBackend> cpu;  // declared first: outlives the model's buffer
    std::shared_ptr<const Model> model;
};

LoadedModel load_model(const cxxopts::ParseResult& args);
SessionOptions session_options(const cxxopts::ParseResult& args);

// Sampling flags: --temp, --top-k, --top-p, --min-p, --repeat-penalty,
// --presence-penalty, --frequency-penalty, --repeat-last-n, --seed.
void add_sampling_options(cxxopts::Options& opts);
// The flags' values on top of the file's recommended settings
// (general.sampling.*, see models/gguf_meta.h) on top of the defaults:
// DeepSeek's recommended settings for R1 models (templates that think),
// llama.cpp-like otherwise.
SamplerParams sampling_params(const cxxopts::ParseResult& args, const Model& model);

// Writes `bytes` to path through a temporary file and a rename.
void write_file_atomically(const std::string& path, const void* data, size_t bytes);

}  // namespace moelite::app
