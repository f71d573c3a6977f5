// Interleaved weight layouts (quant/repack.h): the byte shuffles, the
// activation extras and the scalar reference GEMM over the repacked layout.
#include "quant/repack.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"

namespace moelite {
namespace {

void gemm_repacked_generic(DType type, int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride,
                           const void* const* x_rows, float* const* out_rows);
template <DType kType>
void gemm_repacked_ref_of(int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride, const void* const* x_rows,
                          float* const* out_rows) {
    gemm_repacked_generic(kType, k, m, n, w, w_stride, x_rows, out_rows);
}

// A type's repacked layout. Each block of a group of kRepackRows rows becomes
// kRepackRows blocks' bytes: first its fp16 fields (at these offsets of the
// plain block), each gathered for the rows in row order (16 bytes per
// field), then the rest of the block's bytes, in block order, in chunks of 4
// bytes, each chunk gathered for the rows in row order (32 bytes per chunk).
struct Layout {
    DType type;
    int n_halves;
    int halves[2];
    GemmFn reference;
};
constexpr Layout kLayouts[] = {
    {DType::Q4_0, 1, {0, 0}, gemm_repacked_ref_of<DType::Q4_0>},  // d | qs
    {DType::Q8_0, 1, {0, 0}, gemm_repacked_ref_of<DType::Q8_0>},  // d | qs
    {DType::Q4_K, 2, {0, 2}, gemm_repacked_ref_of<DType::Q4_K>},  // d, dmin | scales, qs
};

const Layout* layout_of(DType type) {
    for (const Layout& l : kLayouts)
        if (l.type == type) return &l;
    return nullptr;
}

// Where each byte of a plain block of row r goes in the group's block:
// to[i] + step[i] * r for byte i (step 2 in the fp16 fields, 4 in chunks).
// The same as runs of bytes that move together: (from, to, bytes, step).
struct ByteMap {
    size_t block_bytes = 0;
    size_t to[512];
    size_t step[512];
    struct Run {
        size_t from, to, bytes, step;
    };
    Run runs[256];
    size_t n_runs = 0;
};

ByteMap byte_map(const Layout& l) {
    ByteMap m;
    m.block_bytes = dtype_block_bytes(l.type);
    MOELITE_ASSERT(m.block_bytes <= 512);
    size_t rest = 0;
    for (size_t i = 0; i < m.block_bytes; ++i) {
        int field = -1;
        for (int f = 0; f < l.n_halves; ++f)
            if (i == size_t(l.halves[f]) || i == size_t(l.halves[f]) + 1) field = f;
        if (field >= 0) {
            m.to[i] = size_t(16 * field) + (i - size_t(l.halves[field]));
            m.step[i] = 2;
        } else {
            m.to[i] = size_t(16 * l.n_halves) + 32 * (rest / 4) + rest % 4;
            m.step[i] = 4;
            ++rest;
        }
        if (m.n_runs > 0) {
            ByteMap::Run& last = m.runs[m.n_runs - 1];
            if (last.step == m.step[i] && last.bytes < last.step && last.to + last.bytes == m.to[i]) {
                ++last.bytes;
                continue;
            }
        }
        MOELITE_ASSERT(m.n_runs < 256);
        m.runs[m.n_runs++] = {i, m.to[i], 1, m.step[i]};
    }
    MOELITE_ASSERT(rest % 4 == 0);
    return m;
}

// memcpy of a run, with the usual sizes as constants (one load and store).
inline void copy_run(uint8_t* to, const uint8_t* from, size_t bytes) {
    if (bytes == 4) {
        std::memcpy(to, from, 4);
    } else if (bytes == 2) {
        std::memcpy(to, from, 2);
    } else {
        std::memcpy(to, from, bytes);
    }
}

inline size_t placed(const ByteMap& m, size_t i, int64_t r) {
    return m.to[i] + size_t(r) * m.step[i];
}

// Offset of the int32 block sums in a converted Q8_0 row of k elements.
size_t q8_0_sums_offset(int64_t k) {
    return (dtype_row_bytes(DType::Q8_0, k) + 3) / 4 * 4;
}

// The plain reference over the repacked layout: each block unshuffled and
// dotted by the type's reference vec_dot, the blocks' results summed in
// order; equal to vec_dot on the plain row up to the order of float sums.
void gemm_repacked_generic(DType type, int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride,
                           const void* const* x_rows, float* const* out_rows) {
    const ByteMap map = byte_map(*layout_of(type));
    const QuantTraits& tr = *quant_traits(type);
    const int64_t bs = dtype_block_size(type), nb = k / bs;
    const size_t x_block = dtype_row_bytes(tr.vec_dot_type, bs);
    uint8_t block[512];
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        const auto* group = static_cast<const uint8_t*>(w) + size_t(g * kRepackRows) * w_stride;
        for (int64_t r = 0; r < kRepackRows; ++r) {
            for (int64_t j = 0; j < n; ++j) {
                const auto* y = static_cast<const uint8_t*>(x_rows[j]);
                float sum = 0.0f;
                for (int64_t b = 0; b < nb; ++b) {
                    const uint8_t* src = group + size_t(b) * kRepackRows * map.block_bytes;
                    for (size_t i = 0; i < map.block_bytes; ++i) block[i] = src[placed(map, i, r)];
                    float part = 0.0f;
                    tr.vec_dot(bs, &part, block, y + size_t(b) * x_block);
                    sum += part;
                }
                out_rows[j][g * kRepackRows + r] = sum;
            }
        }
    }
}

}  // namespace

bool repack_supported(DType type, int64_t k, int64_t m) {
    return layout_of(type) != nullptr && k > 0 && k % dtype_block_size(type) == 0 && m > 0 && m % kRepackRows == 0;
}

void repack_rows(DType type, int64_t k, int64_t m, const void* src, size_t src_stride, void* dst) {
    MOELITE_ASSERT(repack_supported(type, k, m));
    const ByteMap map = byte_map(*layout_of(type));
    const int64_t nb = k / dtype_block_size(type);
    const size_t row_bytes = dtype_row_bytes(type, k);
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        auto* group = static_cast<uint8_t*>(dst) + size_t(g * kRepackRows) * row_bytes;
        for (int64_t r = 0; r < kRepackRows; ++r) {
            const auto* row = static_cast<const uint8_t*>(src) + size_t(g * kRepackRows + r) * src_stride;
            for (int64_t b = 0; b < nb; ++b) {
                uint8_t* out = group + size_t(b) * kRepackRows * map.block_bytes;
                const uint8_t* in = row + size_t(b) * map.block_bytes;
                for (size_t u = 0; u < map.n_runs; ++u) {
                    const ByteMap::Run& run = map.runs[u];
                    copy_run(out + run.to + size_t(r) * run.step, in + run.from, run.bytes);
                }
            }
        }
    }
}

void unpack_rows(DType type, int64_t k, int64_t m, const void* src, void* dst) {
    MOELITE_ASSERT(repack_supported(type, k, m));
    const ByteMap map = byte_map(*layout_of(type));
    const int64_t nb = k / dtype_block_size(type);
    const size_t row_bytes = dtype_row_bytes(type, k);
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        const auto* group = static_cast<const uint8_t*>(src) + size_t(g * kRepackRows) * row_bytes;
        for (int64_t r = 0; r < kRepackRows; ++r) {
            auto* row = static_cast<uint8_t*>(dst) + size_t(g * kRepackRows + r) * row_bytes;
            for (int64_t b = 0; b < nb; ++b) {
                const uint8_t* in = group + size_t(b) * kRepackRows * map.block_bytes;
                uint8_t* out = row + size_t(b) * map.block_bytes;
                for (size_t u = 0; u < map.n_runs; ++u) {
                    const ByteMap::Run& run = map.runs[u];
                    copy_run(out + run.from, in + run.to + size_t(r) * run.step, run.bytes);
                }
            }
        }
    }
}

size_t repacked_x_row_bytes(DType type, int64_t k) {
    MOELITE_ASSERT(layout_of(type) != nullptr);
    if (type == DType::Q4_0) return q8_0_sums_offset(k) + sizeof(int32_t) * size_t(k / kQK8_0);
    return dtype_row_bytes(quant_traits(type)->vec_dot_type, k);
}

void repacked_x_finish(DType type, void* row, int64_t k) {
    MOELITE_ASSERT(layout_of(type) != nullptr);
    if (type != DType::Q4_0) return;
    const auto* y = static_cast<const BlockQ8_0*>(row);
    char* sums = static_cast<char*>(row) + q8_0_sums_offset(k);
    for (int64_t b = 0; b < k / kQK8_0; ++b) {
        int32_t s = 0;
        for (int i = 0; i < kQK8_0; ++i) s += y[b].qs[i];
        std::memcpy(sums + sizeof(int32_t) * size_t(b), &s, sizeof s);
    }
}

GemmFn gemm_repacked_ref(DType type) {
    const Layout* l = layout_of(type);
    return l ? l->reference : nullptr;
}

}  // namespace moelite
