// The converter: streams a Hugging Face checkpoint (or a GGUF file) into a
// quantized GGUF file.
//
//   convert_checkpoint(HF_DIR, OUT.gguf, options)  // moelite convert
//   quantize_gguf(IN.gguf, OUT.gguf, options)      // moelite quantize
//
// Both validate all of their input first (config, shards, the plan of
// tensors, dtypes, shapes, FP8 scales, the tokenizer) and only then create the
// output, so bad input fails with one Error naming the file and the tensor and
// leaves nothing behind. The output is written by GgufWriter under a temporary
// name and renamed at the end; a failure or a cancellation part-way removes
// the temporary file, and an existing OUT is never touched unless the new one
// is complete.
//
// Memory stays bounded whatever the model's size: each tensor is written in
// chunks of rows (as many as options.chunk_bytes of f32 would hold; one
// expert's rows of a stacked tensor are never needed together with
// another's). options.n_threads threads share a chunk's rows, each producing
// and quantizing its share 256 KB of f32 at a time into the chunk's output
// buffer; the chunk is written and the input pages behind it are dropped from
// the resident set.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "convert/quant_recipe.h"

namespace moelite {

struct ConvertProgress {
    size_t tensors_done = 0;
    size_t tensors_total = 0;
    uint64_t bytes_read = 0;  // input bytes consumed so far
    uint64_t bytes_total = 0;
    uint64_t bytes_written = 0;
    double seconds = 0;
    std::string tensor;  // the tensor being written
};

struct ConvertOptions {
    QuantRecipe recipe = recipe_from_name("f16");
    int n_threads = 0;                      // 0: one per hardware thread
    size_t chunk_bytes = size_t(64) << 20;  // rows per chunk, counted as f32 bytes (at least one granule)
    std::function<void(const ConvertProgress&)> progress;  // after each chunk; may be empty
    const std::atomic<bool>* cancel = nullptr;             // checked between chunks
};

struct ConvertReport {
    std::string output;
    size_t n_tensors = 0;
    uint64_t bytes_read = 0;
    uint64_t bytes_written = 0;  // tensor data
    double seconds = 0;
    std::map<std::string, size_t> tensors_by_type;  // "q4_K" -> count
    std::vector<std::string> notes;                 // fallbacks, skipped tensors, unmatched overrides
};

ConvertReport convert_checkpoint(const std::string& hf_dir, const std::string& out_path, const ConvertOptions& options);
ConvertReport quantize_gguf(const std::string& in_path, const std::string& out_path, const ConvertOptions& options);

}  // namespace moelite
