// AVX2 tile kernels over repacked weights (quant/repack.h): Q4_0 in groups
// of 8 rows, times Q8_0 activation rows that carry their block sums.
//
// One group block (8 rows x 32 elements) against one activation block: the
// four 32-byte chunks give, after masking, 8 registers of 8 rows x 4
// consecutive unsigned quants (one row per 32-bit lane); each meets the 4
// matching activation bytes broadcast to every lane. maddubs makes the
// products and adds pairs; the 8 results are added as int16 (each pair is at
// most 2 * 15 * 127 = 3810, the 8 at most 30480: no overflow) and one madd
// by 1 finishes the 8 lane sums. The offset 8 of the weights comes off as
// 8 * (the block's activation sum), and the 8 fp16 scales of the group,
// converted once, scale all 8 lanes with one multiply. Against the plain tile
// (quant/gemm_avx2.cpp) that is 9 multiplies instead of 16 per 8 block dots
// and one float update instead of 8, and no horizontal sums.
//
// Each call computes one group of 8 rows by NR activation rows (NR <= 4 fits
// the 16 ymm registers: NR int16 sums, NR float sums, the unpacked chunk);
// the group's blocks are unpacked once for the NR rows. Decode (one row)
// streams the group's blocks with the same software prefetch as the plain
// tiles.
//
// Built with AVX2 flags; only fill_gemm_repacked_avx2 has external linkage.
#include <cstring>

#include "quant/kernels_isa.h"
#include "quant/simd_avx2.h"

namespace moelite {
namespace {

constexpr int kGroupRows = 8;  // kRepackRows of quant/repack.h (plain headers only here)

struct BlockQ4_0x8 {
    fp16_bits d[kGroupRows];
    uint8_t qs[kGroupRows * 16];
};
static_assert(sizeof(BlockQ4_0x8) == kGroupRows * sizeof(BlockQ4_0));

// Where a converted row of k elements keeps its int32 block sums (quant/repack.cpp).
inline size_t sums_offset(int64_t k) {
    return (size_t(k / kQK8_0) * sizeof(BlockQ8_0) + 3) / 4 * 4;
}

inline __m256i broadcast32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

constexpr int kPrefetchBytes = 4096;  // as the plain tiles (quant/gemm_avx2.cpp)

template <int NR>
void tile_q4_0_r8(int64_t nb, const BlockQ4_0x8* w, const BlockQ8_0* const* x, const int32_t* const* sums,
                  float* const* out) {
    __m256 acc[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[j] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
        const BlockQ4_0x8& wb = w[b];
        const char* ahead = reinterpret_cast<const char*>(&wb) + kPrefetchBytes;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64, _MM_HINT_T0);
        _mm_prefetch(ahead + 128, _MM_HINT_T0);
        __m256i p[NR];
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            const __m256i packed = load256(wb.qs + 32 * c);
            const __m256i lo = _mm256_and_si256(packed, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
#pragma GCC unroll 4
            for (int j = 0; j < NR; ++j) {
                const __m256i t = _mm256_add_epi16(_mm256_maddubs_epi16(lo, broadcast32(x[j][b].qs + 4 * c)),
                                                   _mm256_maddubs_epi16(hi, broadcast32(x[j][b].qs + 16 + 4 * c)));
                p[j] = c == 0 ? t : _mm256_add_epi16(p[j], t);
            }
        }
        const __m256 dw = _mm256_cvtph_ps(load128(wb.d));
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
            const __m256i sumi =
                _mm256_sub_epi32(_mm256_madd_epi16(p[j], ones), _mm256_set1_epi32(8 * sums[j][b]));
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(h2f(x[j][b].d))), _mm256_cvtepi32_ps(sumi),
                                     acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) _mm256_storeu_ps(out[j], acc[j]);
}

constexpr int kCols = 4;
using TileFn = void (*)(int64_t, const BlockQ4_0x8*, const BlockQ8_0* const*, const int32_t* const*, float* const*);
constexpr TileFn kTiles[kCols] = {tile_q4_0_r8<1>, tile_q4_0_r8<2>, tile_q4_0_r8<3>, tile_q4_0_r8<4>};

// Covers m x n with groups of 8 rows by up to kCols activation rows, column
// tile outer so the kCols activation rows stay in L1 while the groups pass.
void gemm_q4_0_r8(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                  float* const* out_rows) {
    const int64_t nb = k / kQK8_0;
    const size_t at = sums_offset(k);
    const char* wc = static_cast<const char*>(w);
    for (int64_t j = 0; j < n; j += kCols) {
        const int nr = int(n - j < kCols ? n - j : kCols);
        const BlockQ8_0* x[kCols];
        const int32_t* sums[kCols];
        float* out[kCols];
        for (int c = 0; c < nr; ++c) {
            x[c] = static_cast<const BlockQ8_0*>(x_rows[j + c]);
            sums[c] = reinterpret_cast<const int32_t*>(static_cast<const char*>(x_rows[j + c]) + at);
        }
        for (int64_t i = 0; i < m; i += kGroupRows) {
            for (int c = 0; c < nr; ++c) out[c] = out_rows[j + c] + i;
            kTiles[nr - 1](nb, reinterpret_cast<const BlockQ4_0x8*>(wc + size_t(i) * ws), x, sums, out);
        }
    }
}

}  // namespace

void fill_gemm_repacked_avx2(GemmFn* gemm_repacked) {
    gemm_repacked[uint32_t(DType::Q4_0)] = gemm_q4_0_r8;
}

}  // namespace moelite
