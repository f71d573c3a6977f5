// Hugging Face generation_config.json -> general.sampling.* GGUF keys.
//
// llama.cpp's converter copies the checkpoint's recommended sampling settings
// into the file (gguf-py Metadata: general.sampling.top_k, .top_p, .min_p,
// .temp, .penalty_last_n, .penalty_repeat, .xtc_probability, .xtc_threshold,
// .mirostat, .mirostat_tau, .mirostat_eta, .sequence), and its tools use them
// as defaults under the command-line flags. We write the same keys with the
// same value types (integers i32, the rest f32, sequence a string), so a file
// converted here gives llama.cpp the same defaults, and our apps read them
// back (models/gguf_meta.h, sampling_metadata_defaults).
//
// Beyond llama.cpp: Transformers' own name "repetition_penalty" stands for
// penalty_repeat when the latter is absent (same meaning: positive logits
// divided, negative multiplied). A generation_config.json is optional; one
// that is not valid JSON, or a value of the wrong type or out of range, is
// left out with a note (like llama.cpp, which ignores an unreadable file) —
// it never fails a conversion.
#pragma once

#include <string>
#include <vector>

#include "core/gguf_writer.h"

namespace moelite {

// The general.sampling.* keys from the JSON text of a generation_config.json;
// `name` is used in the notes appended to `notes`.
std::vector<GgufKV> sampling_metadata_from_json(const std::string& text, const std::string& name,
                                                std::vector<std::string>* notes);

// The same from `dir`/generation_config.json; no keys when the file is absent.
std::vector<GgufKV> sampling_metadata_of_dir(const std::string& dir, std::vector<std::string>* notes);

}  // namespace moelite
