// AMX kernels: the bf16 tile product of quant/gemm.h (Bf16GemmFn) on the tile
// unit, built with the AMX flags (CMakeLists.txt, by file name) and called
// only where the CPU has AMX-BF16 and the kernel granted the tile state
// (quant/cpu_features.cpp). The rules of kernels_avx2.cpp apply: plain
// headers, internal linkage, no standard-library templates.
//
// Tile registers: 0-3 hold the float sums of up to 2 x 2 blocks of 16 weight
// rows by 16 activation rows, 4-5 the weight rows (A, 16 rows of 32 bf16),
// 6-7 the activation chunks (B, the panel layout). Every tile is 16 rows of
// 64 bytes, configured on entry and released on return, so a call leaves no
// tile state behind.
//
// Written on a machine without AMX, and not yet run on one: before the AMX
// table takes it, quant/kernels.cpp checks it against the reference on
// exact data (gemm_bf16_self_check) and drops it with a warning if they
// differ. tests/test_kernels.cpp compares it with gemm_bf16_ref wherever the
// CPU has AMX, and the backend-op suite runs mul_mat through it there.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "quant/gemm.h"
#include "quant/kernels_isa.h"

namespace moelite {
namespace {

// The 64-byte operand of LDTILECFG: palette 1, then for each of its 8 tiles
// the bytes per row and the rows; the rest must be zero.
struct alignas(64) TileConfig {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64);

// Constant data, not a local filled at run time: GCC's _tile_loadconfig tells
// the compiler it reads only the first 8 bytes, so stores to the rest of a
// local could be dropped as dead.
alignas(64) constexpr TileConfig kTileConfig = {1,
                                                0,
                                                {},
                                                {64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0},
                                                {16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0}};

void configure_tiles() {
    _tile_loadconfig(&kTileConfig);
}

// Sums of one block of up to 32 activation rows (one or two panels) with up
// to 32 weight rows (one or two A tiles), over every chunk.
template <bool TwoA, bool TwoB>
void block_sums(int64_t chunks, const char* a, size_t a_stride, const char* b0, const char* b1) {
    _tile_zero(0);
    if (TwoB) _tile_zero(1);
    if (TwoA) _tile_zero(2);
    if (TwoA && TwoB) _tile_zero(3);
    const char* a1 = a + 16 * a_stride;
    for (int64_t c = 0; c < chunks; ++c) {
        _tile_loadd(4, a + c * 64, a_stride);
        _tile_loadd(6, b0 + c * kBf16ChunkBytes, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (TwoB) {
            _tile_loadd(7, b1 + c * kBf16ChunkBytes, 64);
            _tile_dpbf16ps(1, 4, 7);
        }
        if (TwoA) {
            _tile_loadd(5, a1 + c * 64, a_stride);
            _tile_dpbf16ps(2, 5, 6);
            if (TwoB) _tile_dpbf16ps(3, 5, 7);
        }
    }
}

// Tile t of `sums` holds sums[t][i][j] = weight row 16 * (t / 2) + i with
// activation row 16 * (t % 2) + j of the block.
void store_sums(bool two_a, bool two_b, float (*sums)[16][16]) {
    _tile_stored(0, sums[0], 64);
    if (two_b) _tile_stored(1, sums[1], 64);
    if (two_a) _tile_stored(2, sums[2], 64);
    if (two_a && two_b) _tile_stored(3, sums[3], 64);
}

void gemm_bf16_amx(int64_t k_pad, int64_t m, int64_t n, const uint16_t* a, size_t a_stride, const void* b, float* out,
                   size_t out_stride) {
    if (m <= 0 || n <= 0) return;
    configure_tiles();
    const int64_t chunks = k_pad / kBf16Chunk;
    const size_t panel_bytes = size_t(chunks) * kBf16ChunkBytes;
    const auto* wa = reinterpret_cast<const char*>(a);
    const bool two_a = m > 16;
    alignas(64) float sums[4][16][16];
    for (int64_t j0 = 0; j0 < n; j0 += 2 * kBf16PanelRows) {
        const bool two_b = j0 + kBf16PanelRows < n;
        const char* b0 = static_cast<const char*>(b) + size_t(j0 / kBf16PanelRows) * panel_bytes;
        const char* b1 = b0 + panel_bytes;
        if (two_a && two_b) block_sums<true, true>(chunks, wa, a_stride, b0, b1);
        if (two_a && !two_b) block_sums<true, false>(chunks, wa, a_stride, b0, b1);
        if (!two_a && two_b) block_sums<false, true>(chunks, wa, a_stride, b0, b1);
        if (!two_a && !two_b) block_sums<false, false>(chunks, wa, a_stride, b0, b1);
        store_sums(two_a, two_b, sums);
        for (int64_t j = j0; j < n && j < j0 + 2 * kBf16PanelRows; ++j) {
            float* row = reinterpret_cast<float*>(reinterpret_cast<char*>(out) + size_t(j) * out_stride);
            const int64_t jb = (j - j0) / 16, jj = (j - j0) % 16;
            for (int64_t i = 0; i < m; ++i) row[i] = sums[2 * (i / 16) + jb][i % 16][jj];
        }
    }
    _tile_release();
}

}  // namespace

void fill_gemm_amx(Bf16GemmFn* gemm_bf16) {
    *gemm_bf16 = gemm_bf16_amx;
}

}  // namespace moelite
