// Row sources of a conversion (see convert/tensor_source.h).
#include "convert/tensor_source.h"

#include <algorithm>
#include <cstring>

#include "convert/model_metadata.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/mmap.h"
#include "core/safetensors.h"
#include "quant/quant.h"

namespace moelite {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

void drop_pages(const SafetensorsTensor& t, uint64_t byte_begin, uint64_t byte_end) {
    if (!t.file || !t.file->mapping() || byte_end <= byte_begin) return;
    const size_t base = size_t(t.data - t.file->data());
    t.file->mapping()->advise_dontneed(base + byte_begin, byte_end - byte_begin);
}

// One Hugging Face matrix (or vector) read as rows of `cols` floats, FP8
// block scales applied when it has them.
struct HfMatrix {
    const SafetensorsTensor* w = nullptr;
    const SafetensorsTensor* scale = nullptr;  // FP8 only
    int64_t rows = 0, cols = 0;
    int64_t block_rows = 128, block_cols = 128;

    void read(int64_t r0, int64_t r1, float* out) const {
        if (r1 <= r0) return;
        if (scale) {
            fp8_dequantize_rows(*w, *scale, r0, r1, out, block_rows, block_cols);
        } else {
            w->read_f32(r0 * cols, (r1 - r0) * cols, out);
        }
    }
    void release(int64_t r0, int64_t r1) const {
        const uint64_t esize = safetensors_dtype_size(w->dtype);
        drop_pages(*w, uint64_t(r0 * cols) * esize, uint64_t(r1 * cols) * esize);
    }
    void release_all() const {
        release(0, rows);
        if (scale) drop_pages(*scale, 0, scale->nbytes());
    }
    uint64_t bytes() const { return w->nbytes() + (scale ? scale->nbytes() : 0); }
};

// Looks a source up and checks dtype and shape; `want` is the HF shape.
HfMatrix hf_matrix(const SafetensorsCheckpoint& ckpt, const HfConfig& config, const std::string& name,
                   const std::vector<int64_t>& want, const std::string& gguf_name) {
    const SafetensorsTensor& t = ckpt.get(name);
    const char* file = t.file ? t.file->path().c_str() : ckpt.path().c_str();
    if (t.shape != want)
        fail("%s: tensor '%s' has shape %s, but %s needs %s", file, name.c_str(), shape_str(t.shape).c_str(),
             gguf_name.c_str(), shape_str(want).c_str());
    HfMatrix m;
    m.w = &t;
    m.cols = want.empty() ? 1 : want.back();
    m.rows = m.cols ? t.n_elements / m.cols : 0;
    if (t.dtype == SafetensorsDType::F8_E4M3) {
        const std::string scale_name = name + "_scale_inv";
        const SafetensorsTensor* s = ckpt.find(scale_name);
        if (!s) fail("%s: FP8 tensor '%s' has no block scales '%s'", file, name.c_str(), scale_name.c_str());
        m.scale = s;
        if (config.fp8_block_rows > 0) {
            m.block_rows = config.fp8_block_rows;
            m.block_cols = config.fp8_block_cols;
        }
        fp8_check_block_scales(t, *s, m.block_rows, m.block_cols);
    } else if (!safetensors_dtype_is_float(t.dtype)) {
        fail("%s: tensor '%s' has dtype %s, which cannot be converted (float types: F32, F16, BF16, F8_E4M3)", file,
             name.c_str(), safetensors_dtype_name(t.dtype));
    }
    return m;
}

int64_t product(const std::vector<int64_t>& v, size_t from) {
    int64_t p = 1;
    for (size_t i = from; i < v.size(); ++i) p *= v[i];
    return p;
}

class HfSource : public RowSource {
  public:
    HfSource(const ConvertItem& item, const HfConfig& config, const SafetensorsCheckpoint& ckpt) : item_(item) {
        const std::vector<int64_t>& ne = item.spec.shape;
        row_len_ = ne[0];
        rows_ = product(ne, 1);
        const HParams& hp = config.hp;
        switch (item.transform) {
            case TensorTransform::None:
            case TensorTransform::PermuteRopeRows: {
                MOELITE_ASSERT(item.sources.size() == 1);
                std::vector<int64_t> want(ne.rbegin(), ne.rend());
                srcs_.push_back(hf_matrix(ckpt, config, item.sources[0], want, item.spec.name));
                if (item.transform == TensorTransform::PermuteRopeRows) {
                    const int64_t n = ne.size() == 1 ? ne[0] : ne[1];
                    if (item.heads <= 0 || n % (2 * item.heads) != 0)
                        fail("%s: '%s' has %lld rows, which do not split into %lld heads of even size",
                             config.path.c_str(), item.sources[0].c_str(), (long long)n, (long long)item.heads);
                    head_dim_ = n / item.heads;
                }
                break;
            }
            case TensorTransform::StackExperts: {
                MOELITE_ASSERT(ne.size() == 3 && int64_t(item.sources.size()) == ne[2]);
                for (const std::string& s : item.sources)
                    srcs_.push_back(hf_matrix(ckpt, config, s, {ne[1], ne[0]}, item.spec.name));
                break;
            }
            case TensorTransform::SplitKvBK:
            case TensorTransform::SplitKvBV: {
                MOELITE_ASSERT(item.sources.size() == 1);
                nope_ = hp.qk_nope_dim();
                v_ = hp.v_head_dim();
                kv_lora_ = hp.kv_lora_rank;
                srcs_.push_back(
                    hf_matrix(ckpt, config, item.sources[0], {hp.n_head * (nope_ + v_), kv_lora_}, item.spec.name));
                break;
            }
            case TensorTransform::Llama3RopeFreqs:
                computed_ = llama3_rope_factors(config);
                MOELITE_ASSERT(int64_t(computed_.size()) == row_len_ && rows_ == 1);
                break;
        }
    }

    int64_t rows() const override { return rows_; }
    int64_t row_len() const override { return row_len_; }
    int64_t granule() const override { return item_.transform == TensorTransform::SplitKvBK ? kv_lora_ : 1; }
    uint64_t input_bytes() const override {
        uint64_t b = 0;
        for (const HfMatrix& m : srcs_) b += m.bytes();
        // k_b and v_b each read their share of kv_b.
        if (item_.transform == TensorTransform::SplitKvBK) return b * uint64_t(nope_) / uint64_t(nope_ + v_);
        if (item_.transform == TensorTransform::SplitKvBV) return b * uint64_t(v_) / uint64_t(nope_ + v_);
        return b;
    }

    void produce(int64_t r0, int64_t r1, float* out) const override {
        switch (item_.transform) {
            case TensorTransform::None:
                srcs_[0].read(r0, r1, out);
                break;
            case TensorTransform::PermuteRopeRows:
                produce_permuted(r0, r1, out);
                break;
            case TensorTransform::StackExperts: {
                const int64_t per = srcs_[0].rows;
                for (int64_t r = r0; r < r1;) {
                    const int64_t e = r / per, local = r % per;
                    const int64_t n = std::min(r1 - r, per - local);
                    srcs_[size_t(e)].read(local, local + n, out + (r - r0) * row_len_);
                    r += n;
                }
                break;
            }
            case TensorTransform::SplitKvBK: {
                // Output row (h, j), element i = kv_b[h * (nope + v) + i][j]: the
                // k_nope rows of head h, transposed.
                MOELITE_ASSERT(r0 % kv_lora_ == 0 && r1 % kv_lora_ == 0);
                std::vector<float> tmp(size_t(nope_ * kv_lora_));
                for (int64_t h = r0 / kv_lora_; h < r1 / kv_lora_; ++h) {
                    const int64_t first = h * (nope_ + v_);
                    srcs_[0].read(first, first + nope_, tmp.data());
                    float* dst = out + (h * kv_lora_ - r0) * nope_;
                    for (int64_t j = 0; j < kv_lora_; ++j)
                        for (int64_t i = 0; i < nope_; ++i) dst[j * nope_ + i] = tmp[size_t(i * kv_lora_ + j)];
                }
                break;
            }
            case TensorTransform::SplitKvBV: {
                // Output row (h, r) = kv_b row h * (nope + v) + nope + r.
                for (int64_t r = r0; r < r1;) {
                    const int64_t h = r / v_, local = r % v_;
                    const int64_t n = std::min(r1 - r, v_ - local);
                    const int64_t first = h * (nope_ + v_) + nope_ + local;
                    srcs_[0].read(first, first + n, out + (r - r0) * row_len_);
                    r += n;
                }
                break;
            }
            case TensorTransform::Llama3RopeFreqs:
                std::copy(computed_.begin(), computed_.end(), out);
                break;
        }
    }

    void release(int64_t r0, int64_t r1) const override {
        switch (item_.transform) {
            case TensorTransform::None:
                srcs_[0].release(r0, r1);
                if (r1 == rows_) srcs_[0].release_all();
                break;
            case TensorTransform::StackExperts: {
                const int64_t per = srcs_[0].rows;
                for (int64_t e = r0 / per; e <= (r1 - 1) / per; ++e) {
                    const int64_t a = std::max(r0, e * per) - e * per, b = std::min(r1, (e + 1) * per) - e * per;
                    srcs_[size_t(e)].release(a, b);
                    if (b == per) srcs_[size_t(e)].release_all();
                }
                break;
            }
            default:
                if (r1 == rows_)
                    for (const HfMatrix& m : srcs_) m.release_all();
                break;
        }
    }

  private:
    // llama.cpp's `llama` graph rotates adjacent pairs, HF rotates halves: per
    // head of d rows, new row 2i + j <- old row j * d/2 + i (j = 0, 1). A bias
    // (1-D) is permuted the same way, element by element.
    void produce_permuted(int64_t r0, int64_t r1, float* out) const {
        const int64_t d = head_dim_, half = d / 2;
        auto old_index = [&](int64_t n) {
            const int64_t h = n / d, k = n % d;
            return h * d + (k % 2) * half + k / 2;
        };
        if (item_.spec.shape.size() == 1) {
            std::vector<float> tmp(static_cast<size_t>(row_len_));
            srcs_[0].read(0, 1, tmp.data());
            for (int64_t n = 0; n < row_len_; ++n) out[n] = tmp[size_t(old_index(n))];
            return;
        }
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t o = old_index(r);
            srcs_[0].read(o, o + 1, out + (r - r0) * row_len_);
        }
    }

    const ConvertItem& item_;  // owned by the plan, which outlives the conversion
    std::vector<HfMatrix> srcs_;
    std::vector<float> computed_;
    int64_t rows_ = 0, row_len_ = 0;
    int64_t head_dim_ = 0;
    int64_t nope_ = 0, v_ = 0, kv_lora_ = 0;
};

class GgufSource : public RowSource {
  public:
    GgufSource(const GgufFile& file, const GgufTensorInfo& info, DType out_type) : file_(file), info_(info) {
        row_len_ = info.ne[0];
        rows_ = info.ne[1] * info.ne[2] * info.ne[3];
        row_bytes_ = dtype_row_bytes(info.type, row_len_);
        raw_ = out_type == info.type;
        traits_ = quant_traits(info.type);
        if (!raw_ && (!traits_ || !traits_->to_float))
            fail("%s: tensor '%s' has type %s, which cannot be dequantized to re-quantize it as %s",
                 file.path().c_str(), info.name.c_str(), dtype_name(info.type), dtype_name(out_type));
    }

    int64_t rows() const override { return rows_; }
    int64_t row_len() const override { return row_len_; }
    uint64_t input_bytes() const override { return info_.nbytes; }
    void produce(int64_t r0, int64_t r1, float* out) const override {
        traits_->to_float(info_.data + size_t(r0) * row_bytes_, out, (r1 - r0) * row_len_);
    }
    void release(int64_t r0, int64_t r1) const override {
        if (!file_.mapping()) return;
        const size_t base = size_t(info_.data - file_.file_data());
        file_.mapping()->advise_dontneed(base + size_t(r0) * row_bytes_, size_t(r1 - r0) * row_bytes_);
    }
    const uint8_t* raw_bytes(DType out_type) const override { return out_type == info_.type ? info_.data : nullptr; }

  private:
    const GgufFile& file_;
    const GgufTensorInfo& info_;
    const QuantTraits* traits_ = nullptr;
    int64_t rows_ = 0, row_len_ = 0;
    size_t row_bytes_ = 0;
    bool raw_ = false;
};

}  // namespace

std::unique_ptr<RowSource> make_hf_source(const ConvertItem& item, const HfConfig& config,
                                          const SafetensorsCheckpoint& checkpoint) {
    return std::make_unique<HfSource>(item, config, checkpoint);
}

std::unique_ptr<RowSource> make_gguf_source(const GgufFile& file, const GgufTensorInfo& info, DType out_type) {
    return std::make_unique<GgufSource>(file, info, out_type);
}

}  // namespace moelite
