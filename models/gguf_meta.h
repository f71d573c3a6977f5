// Model hyper-parameters -> GGUF metadata, with llama.cpp's key names and
// conventions (the converter and the synthetic-model writer both use it, so
// a file we write reads back to the same HParams in moelite and in llama.cpp).
#pragma once

#include <string>

#include "core/gguf_writer.h"
#include "models/arch.h"
#include "models/tokenizer.h"

namespace moelite {

// general.architecture/name/type/quantization_version and every {arch}.* key
// HParams holds. general.file_type and tokenizer keys are the caller's.
void write_model_metadata(GgufWriter& w, const HParams& hp, const std::string& name);

// tokenizer.ggml.* and tokenizer.chat_template, as llama.cpp's converter writes them.
void write_tokenizer_metadata(GgufWriter& w, const TokenizerMetadata& t);

}  // namespace moelite
