// Row sources: where the f32 rows of each output tensor come from while a
// conversion streams.
//
// An output tensor of GGUF shape ne is a sequence of rows() rows of
// row_len() = ne[0] floats (rows in ne order: ne[1] fastest, then ne[2] ...).
// A RowSource produces any range of them on demand, so the converter never
// holds more than one chunk of rows of one tensor (one expert's rows of a
// stacked tensor) whatever the model's size. produce() is const and
// thread-safe: worker threads fill disjoint row ranges of one chunk at once.
//
// Two kinds:
//  - a Hugging Face tensor of a ConvertPlan item, read from the safetensors
//    shards (F32/F16/BF16, or F8_E4M3 with its `<name>_scale_inv` block scales,
//    dequantized exactly) with the item's transform applied on the fly
//    (rope row permutation, expert stacking, kv_b split, computed rope_freqs);
//  - a tensor of a GGUF file, dequantized with its type's to_float (the
//    `moelite quantize` path), or copied as raw bytes when its type stays.
//
// Construction validates everything a source could get wrong (dtype, shape,
// FP8 scale shape) and throws Error naming the file and the tensor, so that a
// conversion fails before it creates any output.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "convert/hf_config.h"
#include "convert/tensor_map.h"
#include "core/dtype.h"

namespace moelite {

class SafetensorsCheckpoint;
class GgufFile;
struct GgufTensorInfo;

class RowSource {
  public:
    virtual ~RowSource() = default;
    virtual int64_t rows() const = 0;
    virtual int64_t row_len() const = 0;
    // Chunks start and end on multiples of this many rows (a transform that
    // works a head at a time needs whole heads).
    virtual int64_t granule() const { return 1; }
    // Fills out[(r - r0) * row_len() + i] for r in [r0, r1).
    virtual void produce(int64_t r0, int64_t r1, float* out) const = 0;
    // Rows [r0, r1) are done: their input pages may leave memory.
    virtual void release(int64_t r0, int64_t r1) const {}
    // Bytes of input behind the whole tensor (for progress and throughput).
    virtual uint64_t input_bytes() const = 0;
    // When the output type equals the stored type and nothing transforms the
    // data, the stored bytes (nullptr otherwise); release() still applies.
    virtual const uint8_t* raw_bytes(DType out_type) const { return nullptr; }
};

// The source of one plan item. `block_rows` / `block_cols`: the FP8 scale
// block (from config.json; 128 x 128 when the config names none).
std::unique_ptr<RowSource> make_hf_source(const ConvertItem& item, const HfConfig& config,
                                          const SafetensorsCheckpoint& checkpoint);

// A GGUF tensor to re-quantize into `out_type`. Error naming the file and the
// tensor when its type cannot be dequantized and differs from out_type.
std::unique_ptr<RowSource> make_gguf_source(const GgufFile& file, const GgufTensorInfo& info, DType out_type);

}  // namespace moelite
