// Interleaved weight layouts (quant/repack.h): the byte shuffles, the
// activation extras and the scalar reference GEMM over the repacked layout.
#include "quant/repack.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/blocks.h"

namespace moelite {
namespace {

// Block b of a group of 8 Q4_0 rows (quant/repack.h).
struct BlockQ4_0x8 {
    fp16_bits d[kRepackRows];
    uint8_t qs[kRepackRows * kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0x8) == kRepackRows * sizeof(BlockQ4_0));

// Byte t (0..15) of row r's qs sits at this offset of the group block's qs.
inline size_t q4_0x8_byte(int64_t r, int t) {
    return size_t(32 * (t / 4) + 4 * r + t % 4);
}

// Offset of the int32 block sums in a converted Q8_0 row of k elements.
size_t q8_0_sums_offset(int64_t k) {
    return (dtype_row_bytes(DType::Q8_0, k) + 3) / 4 * 4;
}

// Computes each (q - 8) * y directly, so the block sums of x are not read.
void gemm_q4_0_r8_ref(int64_t k, int64_t m, int64_t n, const void* w, size_t w_stride, const void* const* x_rows,
                      float* const* out_rows) {
    const int64_t nb = k / kQK4_0;
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        const auto* blocks =
            reinterpret_cast<const BlockQ4_0x8*>(static_cast<const char*>(w) + size_t(g * kRepackRows) * w_stride);
        for (int64_t j = 0; j < n; ++j) {
            const auto* y = static_cast<const BlockQ8_0*>(x_rows[j]);
            for (int64_t r = 0; r < kRepackRows; ++r) {
                float sum = 0.0f;
                for (int64_t b = 0; b < nb; ++b) {
                    int isum = 0;
                    for (int t = 0; t < 16; ++t) {
                        const uint8_t q = blocks[b].qs[q4_0x8_byte(r, t)];
                        isum += ((q & 0x0f) - 8) * y[b].qs[t];
                        isum += ((q >> 4) - 8) * y[b].qs[t + 16];
                    }
                    sum += fp16_to_fp32(blocks[b].d[r]) * fp16_to_fp32(y[b].d) * float(isum);
                }
                out_rows[j][g * kRepackRows + r] = sum;
            }
        }
    }
}

}  // namespace

bool repack_supported(DType type, int64_t k, int64_t m) {
    return type == DType::Q4_0 && k > 0 && k % kQK4_0 == 0 && m > 0 && m % kRepackRows == 0;
}

void repack_rows(DType type, int64_t k, int64_t m, const void* src, size_t src_stride, void* dst) {
    MOELITE_ASSERT(repack_supported(type, k, m));
    const int64_t nb = k / kQK4_0;
    const size_t row_bytes = dtype_row_bytes(type, k);
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        auto* out = reinterpret_cast<BlockQ4_0x8*>(static_cast<char*>(dst) + size_t(g * kRepackRows) * row_bytes);
        for (int64_t r = 0; r < kRepackRows; ++r) {
            const auto* row = reinterpret_cast<const BlockQ4_0*>(static_cast<const char*>(src) +
                                                                 size_t(g * kRepackRows + r) * src_stride);
            for (int64_t b = 0; b < nb; ++b) {
                out[b].d[r] = row[b].d;
                for (int t = 0; t < 16; ++t) out[b].qs[q4_0x8_byte(r, t)] = row[b].qs[t];
            }
        }
    }
}

void unpack_rows(DType type, int64_t k, int64_t m, const void* src, void* dst) {
    MOELITE_ASSERT(repack_supported(type, k, m));
    const int64_t nb = k / kQK4_0;
    const size_t row_bytes = dtype_row_bytes(type, k);
    for (int64_t g = 0; g < m / kRepackRows; ++g) {
        const auto* in =
            reinterpret_cast<const BlockQ4_0x8*>(static_cast<const char*>(src) + size_t(g * kRepackRows) * row_bytes);
        for (int64_t r = 0; r < kRepackRows; ++r) {
            auto* row = reinterpret_cast<BlockQ4_0*>(static_cast<char*>(dst) + size_t(g * kRepackRows + r) * row_bytes);
            for (int64_t b = 0; b < nb; ++b) {
                row[b].d = in[b].d[r];
                for (int t = 0; t < 16; ++t) row[b].qs[t] = in[b].qs[q4_0x8_byte(r, t)];
            }
        }
    }
}

size_t repacked_x_row_bytes(DType type, int64_t k) {
    MOELITE_ASSERT(type == DType::Q4_0);
    return q8_0_sums_offset(k) + sizeof(int32_t) * size_t(k / kQK8_0);
}

void repacked_x_finish(DType type, void* row, int64_t k) {
    MOELITE_ASSERT(type == DType::Q4_0);
    const auto* y = static_cast<const BlockQ8_0*>(row);
    char* sums = static_cast<char*>(row) + q8_0_sums_offset(k);
    for (int64_t b = 0; b < k / kQK8_0; ++b) {
        int32_t s = 0;
        for (int i = 0; i < kQK8_0; ++i) s += y[b].qs[i];
        std::memcpy(sums + sizeof(int32_t) * size_t(b), &s, sizeof s);
    }
}

GemmFn gemm_repacked_ref(DType type) {
    return type == DType::Q4_0 ? gemm_q4_0_r8_ref : nullptr;
}

}  // namespace moelite
