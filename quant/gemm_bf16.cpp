// The bf16 tile layout of quant/gemm.h in plain C++: the panel writer every
// caller uses, and the scalar reference of the AMX kernel.
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/gemm.h"

namespace moelite {
namespace {

// Byte offset of weight row i's element pair (2r, 2r + 1) of chunk c in its panel.
inline size_t panel_offset(int64_t c, int64_t r, int64_t i) {
    return size_t(c) * kBf16ChunkBytes + size_t(r) * 64 + size_t(i) * 4;
}

}  // namespace

void bf16_panel_put_row(const uint16_t* row, int64_t k, int64_t k_pad, int64_t i, void* panel) {
    MOELITE_ASSERT(k >= 0 && k <= k_pad && k_pad % kBf16Chunk == 0 && i >= 0 && i < kBf16PanelRows);
    auto* out = static_cast<char*>(panel);
    for (int64_t e = 0; e < k_pad; e += 2) {
        const uint16_t pair[2] = {e < k ? row[e] : uint16_t(0), e + 1 < k ? row[e + 1] : uint16_t(0)};
        std::memcpy(out + panel_offset(e / kBf16Chunk, (e % kBf16Chunk) / 2, i), pair, 4);
    }
}

void gemm_bf16_ref(int64_t k_pad, int64_t m, int64_t n, const void* w, const uint16_t* x, size_t x_stride, float* out,
                   size_t out_stride) {
    MOELITE_ASSERT(k_pad % kBf16Chunk == 0 && m >= 0 && m <= kBf16MaxRows && n >= 0);
    const auto* panels = static_cast<const char*>(w);
    const size_t panel_bytes = size_t(k_pad / kBf16Chunk) * kBf16ChunkBytes;
    for (int64_t j = 0; j < n; ++j) {
        const auto* row = reinterpret_cast<const uint16_t*>(reinterpret_cast<const char*>(x) + size_t(j) * x_stride);
        for (int64_t i = 0; i < m; ++i) {
            const char* panel = panels + size_t(i / kBf16PanelRows) * panel_bytes;
            double sum = 0.0;
            for (int64_t e = 0; e < k_pad; e += 2) {
                uint16_t pair[2];
                std::memcpy(pair, panel + panel_offset(e / kBf16Chunk, (e % kBf16Chunk) / 2, i % kBf16PanelRows), 4);
                sum += double(bf16_to_fp32(pair[0])) * double(bf16_to_fp32(row[e])) +
                       double(bf16_to_fp32(pair[1])) * double(bf16_to_fp32(row[e + 1]));
            }
            reinterpret_cast<float*>(reinterpret_cast<char*>(out) + size_t(j) * out_stride)[i] = float(sum);
        }
    }
}

bool gemm_bf16_self_check(Bf16GemmFn gemm) {
    struct Shape {
        int64_t k_pad, m, n;
    };
    for (Shape s : {Shape{64, 32, 48}, Shape{96, 17, 33}, Shape{32, 5, 7}}) {
        // Weights -4..4 and activations -3..3: every product and sum is a small integer.
        const size_t panel_bytes = size_t(s.k_pad / kBf16Chunk) * kBf16ChunkBytes;
        std::vector<char> w(panel_bytes * size_t(kBf16MaxRows / kBf16PanelRows));
        std::vector<uint16_t> row(size_t(s.k_pad));
        for (int64_t i = 0; i < kBf16MaxRows; ++i) {
            for (int64_t e = 0; e < s.k_pad; ++e) row[size_t(e)] = fp32_to_bf16(float(int((i * 7 + e * 5) % 9) - 4));
            bf16_panel_put_row(row.data(), s.k_pad, s.k_pad, i % kBf16PanelRows,
                               w.data() + size_t(i / kBf16PanelRows) * panel_bytes);
        }
        const int64_t x_rows = (s.n + kBf16PanelRows - 1) / kBf16PanelRows * kBf16PanelRows;
        std::vector<uint16_t> x(size_t(x_rows * s.k_pad));
        for (size_t e = 0; e < x.size(); ++e) x[e] = fp32_to_bf16(float(int((e * 3 + e / 11) % 7) - 3));
        const size_t stride = size_t(s.m + 1) * sizeof(float);
        std::vector<float> want(size_t(s.n * (s.m + 1)), -1.0f), got = want;
        gemm_bf16_ref(s.k_pad, s.m, s.n, w.data(), x.data(), size_t(s.k_pad) * 2, want.data(), stride);
        gemm(s.k_pad, s.m, s.n, w.data(), x.data(), size_t(s.k_pad) * 2, got.data(), stride);
        if (std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) != 0) return false;
    }
    return true;
}

}  // namespace moelite
