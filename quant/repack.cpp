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

constexpr size_t kMaxChunks = 64;

// Where each of a layout's chunks goes in a group block: chunk_to[c] is the
// byte offset from the block's first chunk of plain chunk c (c < the
// returned count).
size_t chunk_offsets(const Layout& l, uint16_t* chunk_to) {
    const size_t n_chunks = rest_bytes(l) / 4;
    MOELITE_ASSERT(n_chunks >= 4 && n_chunks <= kMaxChunks);  // RepackChunksFn's bounds (quant/gemm.h)
    for (size_t p = 0; p < n_chunks; ++p) chunk_to[l.chunk_order ? l.chunk_order[p] : p] = uint16_t(32 * p);
    return n_chunks;
}

// Copies row r's block b out of its group (group block b starts at
// b * kRepackRows * block bytes, fields first) into `block`.
void unpack_block(const Layout& l, const uint8_t* group, int64_t b, int64_t r, const uint16_t* chunk_to,
                  size_t n_chunks, uint8_t* block) {
    const uint8_t* fields = group + size_t(b) * kRepackRows * dtype_block_bytes(l.type);
    for (int f = 0; f < l.n_halves; ++f) std::memcpy(block + l.halves[f], fields + 16 * f + 2 * r, 2);
    const uint8_t* grouped = fields + 16 * size_t(l.n_halves) + 4 * r;
    for (size_t c = 0; c < n_chunks; ++c) std::memcpy(block + l.rest_from + 4 * c, grouped + chunk_to[c], 4);
}

const Layout& layout_for(DType type, int64_t k, int64_t m) {
    MOELITE_ASSERT(repack_supported(type, k, m));
    return *layout_of(type);
}

// What moving m rows of k elements of `type` in or out of groups needs.
struct Moves {
    const Layout& l;
    size_t block_bytes, row_bytes;
    int64_t nb;
    uint16_t chunk_to[kMaxChunks];
    size_t n_chunks;
    Moves(DType type, int64_t k, int64_t m)
        : l(layout_for(type, k, m)),
          block_bytes(dtype_block_bytes(type)),
          row_bytes(dtype_row_bytes(type, k)),
          nb(k / dtype_block_size(type)),
          chunk_to(),
          n_chunks(chunk_offsets(l, chunk_to)) {}
};

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
    uint16_t chunk_to[kMaxChunks];
    const size_t n_chunks = chunk_offsets(l, chunk_to);
    uint8_t block[512];
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        const auto* group = static_cast<const uint8_t*>(w) + size_t(g * kRepackRows) * w_stride;
        for (int64_t r = 0; r < kRepackRows; ++r) {
            for (int64_t j = 0; j < n; ++j) {
                const auto* y = static_cast<const uint8_t*>(x_rows[j]);
                float sum = 0.0f;
                for (int64_t b = 0; b < nb; ++b) {
                    unpack_block(l, group, b, r, chunk_to, n_chunks, block);
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

void repack_chunks_ref(const uint8_t* const* rows, int n_chunks, uint8_t* group, const uint16_t* chunk_to) {
    for (int c = 0; c < n_chunks; ++c)
        for (int64_t r = 0; r < kRepackRows; ++r) std::memcpy(group + chunk_to[c] + 4 * r, rows[r] + 4 * c, 4);
}

void repack_rows(DType type, int64_t k, int64_t m, const void* src, size_t src_stride, void* dst,
                 RepackChunksFn chunks) {
    const Moves mv(type, k, m);
    const Layout& l = mv.l;
    const auto* plain = static_cast<const uint8_t*>(src);
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        auto* group = static_cast<uint8_t*>(dst) + size_t(g * kRepackRows) * mv.row_bytes;
        const uint8_t* rows[kRepackRows];
        for (int64_t b = 0; b < mv.nb; ++b) {
            uint8_t* fields = group + size_t(b) * kRepackRows * mv.block_bytes;
            const size_t at = size_t(b) * mv.block_bytes;
            for (int64_t r = 0; r < kRepackRows; ++r) rows[r] = plain + size_t(g * kRepackRows + r) * src_stride + at;
            for (int f = 0; f < l.n_halves; ++f)
                for (int64_t r = 0; r < kRepackRows; ++r)
                    std::memcpy(fields + 16 * f + 2 * r, rows[r] + l.halves[f], 2);
            for (int64_t r = 0; r < kRepackRows; ++r) rows[r] += l.rest_from;
            chunks(rows, int(mv.n_chunks), fields + 16 * size_t(l.n_halves), mv.chunk_to);
        }
    }
}

void unpack_rows(DType type, int64_t k, int64_t m, const void* src, void* dst) {
    const Moves mv(type, k, m);
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        const auto* group = static_cast<const uint8_t*>(src) + size_t(g * kRepackRows) * mv.row_bytes;
        for (int64_t r = 0; r < kRepackRows; ++r) {
            uint8_t* row = static_cast<uint8_t*>(dst) + size_t(g * kRepackRows + r) * mv.row_bytes;
            for (int64_t b = 0; b < mv.nb; ++b)
                unpack_block(mv.l, group, b, r, mv.chunk_to, mv.n_chunks, row + size_t(b) * mv.block_bytes);
        }
    }
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
