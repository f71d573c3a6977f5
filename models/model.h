// Model: an immutable, shareable language model loaded from a GGUF file.
//
// Holds the hyper-parameters, one Tensor per weight pointing straight into
// the memory-mapped file (nothing is copied), and the text-side metadata
// (chat template, special tokens). Weights are looked up by role and layer
// (models/arch.h); the file is validated against the architecture's tensor
// declaration when loading: a missing tensor, a wrong shape or a type we
// cannot compute is an Error naming the file and the tensor.
#pragma once

#include <array>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/gguf.h"
#include "models/arch.h"
#include "models/tokenizer.h"

namespace moelite {

// Reads the hyper-parameters of `file` (keys {arch}.*, see HParams).
HParams hparams_from_gguf(const GgufFile& file);

class Model {
public:
    // Maps `path` and validates it. `host` is the backend whose host buffers
    // wrap the mapping (the CPU backend).
    static std::shared_ptr<const Model> load(const std::string& path, Backend& host);

    const HParams& hparams() const { return hp_; }
    const GgufFile& file() const { return *file_; }
    const std::string& path() const { return file_->path(); }

    // The weight of `role` in `layer` (-1 for global tensors), or nullptr when
    // the file does not have it (optional tensors).
    Tensor* weight(TensorRole role, int64_t layer = -1) const;
    // All weights, in file order.
    const std::deque<Tensor>& weights() const { return tensors_; }
    // Bytes of all weight data.
    size_t weight_bytes() const { return weight_bytes_; }

    const std::string& chat_template() const { return chat_template_; }
    // The tokenizer stored in the file, or nullptr for a vocab-less model
    // (tokenizer.ggml.model = "none"), which runs on token ids only.
    const Tokenizer* tokenizer() const { return tokenizer_ ? &*tokenizer_ : nullptr; }
    // A short description: "qwen2 1.5B q4_K" style, for banners and bench.
    std::string description() const;

private:
    Model() = default;

    HParams hp_;
    std::unique_ptr<GgufFile> file_;
    // Hands the backend the weights it may keep in its own layout (load()).
    void adopt_weights(Backend& host);

    std::unique_ptr<Buffer> buffer_;
    // Weights the backend moved into memory of its own (repacked or copied), if any.
    std::vector<std::unique_ptr<Buffer>> own_buffers_;
    std::deque<Tensor> tensors_;
    std::array<Tensor*, size_t(TensorRole::Count)> globals_{};
    std::vector<std::array<Tensor*, size_t(TensorRole::Count)>> layers_;
    size_t weight_bytes_ = 0;
    std::string chat_template_;
    std::optional<Tokenizer> tokenizer_;
};

// The tokenizer of a GGUF file (tokenizer.ggml.*), or nullopt when the file
// has none. Unsupported tokenizer models are an Error naming the file.
std::optional<Tokenizer> tokenizer_from_gguf(const GgufFile& file);

}  // namespace moelite
