#include "models/kv_cache.h"

#include <cstring>

#include "core/error.h"

namespace moelite {

KvCache::KvCache(const std::vector<KvLayerShape>& layers, int64_t n_ctx, DType type, Backend& backend)
    : n_ctx_(n_ctx), type_(type), backend_(backend) {
    if (type != DType::F32 && type != DType::F16 && type != DType::Q8_0)
        fail("cache type %s is not supported (use f32, f16 or q8_0)", dtype_name(type));
    if (n_ctx <= 0) fail("context length must be positive");
    const size_t align = backend.alignment();
    size_t total = 0;
    std::vector<size_t> offsets;  // each tensor's offset in the buffer, in tensors_ order
    auto add = [&](int64_t width, int64_t heads, const std::string& name) -> Tensor* {
        if (width % dtype_block_size(type) != 0)
            fail("cache type %s needs rows that are a multiple of %lld elements, and this model has %lld",
                 dtype_name(type), (long long)dtype_block_size(type), (long long)width);
        Tensor& t = tensors_.emplace_back();
        const int64_t ne[3] = {width, n_ctx, heads};
        tensor_set_shape(t, type, ne, 3);
        t.name = name;
        offsets.push_back(total);
        total += (t.nbytes() + align - 1) / align * align;
        return &t;
    };
    for (size_t il = 0; il < layers.size(); ++il) {
        const KvLayerShape& s = layers[il];
        k_.push_back(add(s.k_width, s.n_kv_heads, "cache_k." + std::to_string(il)));
        v_.push_back(s.v_width ? add(s.v_width, s.n_kv_heads, "cache_v." + std::to_string(il)) : nullptr);
    }
    try {
        buffer_ = backend.alloc_buffer(total);
    } catch (const Error& e) {
        fail("the KV cache (%.1f MiB for %lld tokens) cannot be allocated: %s; a smaller context (-c) needs less",
             double(total) / double(1 << 20), (long long)n_ctx, e.what());
    }
    MOELITE_ASSERT(buffer_ != nullptr);
    size_t i = 0;
    for (Tensor& t : tensors_) {
        t.data = static_cast<char*>(buffer_->base()) + offsets[i++];
        t.buffer = buffer_.get();
    }
    clear();
}

size_t KvCache::bytes() const { return buffer_->size(); }

size_t KvCache::bytes_per_token() const {
    size_t b = 0;
    for (const Tensor& t : tensors_) b += t.row_bytes() * size_t(t.ne[2]);
    return b;
}

void KvCache::clear() {
    if (buffer_->is_host()) {
        std::memset(buffer_->base(), 0, buffer_->size());
        return;
    }
    std::vector<char> zeros;
    for (Tensor& t : tensors_) {
        zeros.assign(t.nbytes(), 0);
        backend_.set_tensor(t, zeros.data(), 0, zeros.size());
    }
}

}  // namespace moelite
