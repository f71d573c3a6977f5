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
// Q6_K's chunks in the order its kernel reads them: for each half h and each
// 4 elements l of its 32, the ql chunks of l and l + 32 and the qh chunk of l
// (which together hold runs 0..3 of those elements), then the 4 of scales.
struct Q6KChunkOrder {
    uint8_t at[52];
    constexpr Q6KChunkOrder() : at() {
        int p = 0;
        for (int h = 0; h < 2; ++h)
            for (int lc = 0; lc < 8; ++lc) {
                at[p++] = uint8_t(16 * h + lc);
                at[p++] = uint8_t(16 * h + 8 + lc);
                at[p++] = uint8_t(32 + 8 * h + lc);
            }
        for (int t = 0; t < 4; ++t) at[p++] = uint8_t(48 + t);
    }
};
constexpr Q6KChunkOrder kQ6KOrder;

struct Layout {
    DType type;
    int n_halves;
    int halves[2];  // offsets of the fp16 fields in the block
    int rest_from;  // the other bytes: one run from here to the block's end or to the first field
    GemmFn reference;
    const uint8_t* chunk_order = nullptr;  // chunk p of a group block holds the block's chunk chunk_order[p]
};
constexpr Layout kLayouts[] = {
    {DType::Q4_0, 1, {0, 0}, 2, gemm_repacked_ref_of<DType::Q4_0>},                  // d | qs
    {DType::Q8_0, 1, {0, 0}, 2, gemm_repacked_ref_of<DType::Q8_0>},                  // d | qs
    {DType::Q4_K, 2, {0, 2}, 4, gemm_repacked_ref_of<DType::Q4_K>},                  // d, dmin | scales, qs
    {DType::Q5_0, 1, {0, 0}, 2, gemm_repacked_ref_of<DType::Q5_0>},                  // d | qh, qs
    {DType::Q6_K, 1, {208, 0}, 0, gemm_repacked_ref_of<DType::Q6_K>, kQ6KOrder.at},  // d | ql, qh, scales
};

// Types whose activations are Q8_0 rows with extras: the blocks' scales as
// floats, and (where the weights' quants go in unsigned) the offset times
// each block's quant sum.
bool takes_x_extras(DType type) {
    return type == DType::Q4_0 || type == DType::Q5_0 || type == DType::Q8_0;
}
int32_t weight_offset(DType type) {
    return type == DType::Q4_0 ? 8 : type == DType::Q5_0 ? 16 : 0;
}

const Layout* layout_of(DType type) {
    for (const Layout& l : kLayouts)
        if (l.type == type) return &l;
    return nullptr;
}

// Bytes of the chunked run of a layout.
size_t rest_bytes(const Layout& l) {
    return dtype_block_bytes(l.type) - 2 * size_t(l.n_halves);
}

// Moves row r's block b into (to_group = true) or out of its group: the
// group block b starts at b * kRepackRows * block bytes, fields first.
inline void move_block(const Layout& l, uint8_t* group, int64_t b, uint8_t* block, int64_t r, bool to_group) {
    auto move = [to_group](uint8_t* grouped, uint8_t* plain, size_t bytes) {
        if (to_group) {
            std::memcpy(grouped, plain, bytes);
        } else {
            std::memcpy(plain, grouped, bytes);
        }
    };
    uint8_t* fields = group + size_t(b) * kRepackRows * dtype_block_bytes(l.type);
    for (int f = 0; f < l.n_halves; ++f) move(fields + 16 * f + 2 * r, block + l.halves[f], 2);
    const size_t n_chunks = rest_bytes(l) / 4;
    uint8_t* chunks = fields + 16 * size_t(l.n_halves) + 4 * size_t(r);
    for (size_t c = 0; c < n_chunks; ++c)
        move(chunks + 32 * c, block + l.rest_from + 4 * (l.chunk_order ? l.chunk_order[c] : c), 4);
}

// Offset of the extras in a converted Q8_0 row of k elements.
size_t q8_0_extras_offset(int64_t k) {
    return (dtype_row_bytes(DType::Q8_0, k) + 3) / 4 * 4;
}

// The plain reference over the repacked layout: each block unshuffled and
// dotted by the type's reference vec_dot, the blocks' results summed in
// order; equal to vec_dot on the plain row up to the order of float sums.
void gemm_repacked_generic(DType type, int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride,
                           const void* const* x_rows, float* const* out_rows) {
    const Layout& l = *layout_of(type);
    const QuantTraits& tr = *quant_traits(type);
    const int64_t bs = dtype_block_size(type), nb = k / bs;
    const size_t x_block = dtype_row_bytes(tr.vec_dot_type, bs);
    uint8_t block[512];
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        // Only read (move_block out of the group).
        auto* group = const_cast<uint8_t*>(static_cast<const uint8_t*>(w)) + size_t(g * kRepackRows) * w_stride;
        for (int64_t r = 0; r < kRepackRows; ++r) {
            for (int64_t j = 0; j < n; ++j) {
                const auto* y = static_cast<const uint8_t*>(x_rows[j]);
                float sum = 0.0f;
                for (int64_t b = 0; b < nb; ++b) {
                    move_block(l, group, b, block, r, false);
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

namespace {

// Moves m rows between the plain layout (rows `plain_stride` bytes apart) and
// the repacked one (rows contiguous): move_block's moves, reordered so that
// each group block is written (or read) front to back, 8 rows at a time, with
// the chunk offsets worked out once.
template <bool ToGroup>
void move_rows(DType type, int64_t k, int64_t m, uint8_t* repacked, uint8_t* plain, size_t plain_stride) {
    MOELITE_ASSERT(repack_supported(type, k, m));
    const Layout& l = *layout_of(type);
    const size_t block_bytes = dtype_block_bytes(type);
    const int64_t nb = k / dtype_block_size(type);
    const size_t row_bytes = dtype_row_bytes(type, k);
    constexpr size_t kMaxChunks = 64;
    const size_t n_chunks = rest_bytes(l) / 4;
    MOELITE_ASSERT(n_chunks <= kMaxChunks);
    uint16_t chunk_at[kMaxChunks];  // where group chunk c sits in the plain block
    for (size_t c = 0; c < n_chunks; ++c)
        chunk_at[c] = uint16_t(l.rest_from + 4 * (l.chunk_order ? l.chunk_order[c] : c));
    auto move = [](uint8_t* grouped, uint8_t* row, size_t bytes) {
        if constexpr (ToGroup) {
            std::memcpy(grouped, row, bytes);
        } else {
            std::memcpy(row, grouped, bytes);
        }
    };
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        uint8_t* group = repacked + size_t(g * kRepackRows) * row_bytes;
        uint8_t* rows[kRepackRows];
        for (int64_t r = 0; r < kRepackRows; ++r) rows[r] = plain + size_t(g * kRepackRows + r) * plain_stride;
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* fields = group + size_t(b) * kRepackRows * block_bytes;
            const size_t at = size_t(b) * block_bytes;
            for (int f = 0; f < l.n_halves; ++f)
                for (int64_t r = 0; r < kRepackRows; ++r) move(fields + 16 * f + 2 * r, rows[r] + at + l.halves[f], 2);
            uint8_t* chunks = fields + 16 * size_t(l.n_halves);
            for (size_t c = 0; c < n_chunks; ++c)
                for (int64_t r = 0; r < kRepackRows; ++r) move(chunks + 32 * c + 4 * r, rows[r] + at + chunk_at[c], 4);
        }
    }
}

}  // namespace

void repack_rows(DType type, int64_t k, int64_t m, const void* src, size_t src_stride, void* dst) {
    // move_rows only reads the plain side when moving into groups.
    move_rows<true>(type, k, m, static_cast<uint8_t*>(dst), const_cast<uint8_t*>(static_cast<const uint8_t*>(src)),
                    src_stride);
}

void unpack_rows(DType type, int64_t k, int64_t m, const void* src, void* dst) {
    move_rows<false>(type, k, m, const_cast<uint8_t*>(static_cast<const uint8_t*>(src)), static_cast<uint8_t*>(dst),
                     dtype_row_bytes(type, k));
}

size_t repacked_x_row_bytes(DType type, int64_t k) {
    MOELITE_ASSERT(layout_of(type) != nullptr);
    if (!takes_x_extras(type)) return dtype_row_bytes(quant_traits(type)->vec_dot_type, k);
    const size_t per_block = sizeof(float) + (weight_offset(type) != 0 ? sizeof(int32_t) : 0);
    return q8_0_extras_offset(k) + per_block * size_t(k / kQK8_0);
}

void repacked_x_finish(DType type, void* row, int64_t k) {
    MOELITE_ASSERT(layout_of(type) != nullptr);
    if (!takes_x_extras(type)) return;
    const int64_t nb = k / kQK8_0;
    const int32_t offset = weight_offset(type);
    const auto* y = static_cast<const BlockQ8_0*>(row);
    char* scales = static_cast<char*>(row) + q8_0_extras_offset(k);
    char* sums = scales + sizeof(float) * size_t(nb);
    for (int64_t b = 0; b < nb; ++b) {
        const float d = fp16_to_fp32(y[b].d);
        std::memcpy(scales + sizeof(float) * size_t(b), &d, sizeof d);
        if (offset == 0) continue;
        int32_t s = 0;
        for (int i = 0; i < kQK8_0; ++i) s += y[b].qs[i];
        s *= offset;
        std::memcpy(sums + sizeof(int32_t) * size_t(b), &s, sizeof s);
    }
}

GemmFn gemm_repacked_ref(DType type) {
    const Layout* l = layout_of(type);
    return l ? l->reference : nullptr;
}

}  // namespace moelite
