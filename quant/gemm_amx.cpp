// AMX kernels: the bf16 tile product of quant/gemm.h (Bf16GemmFn) on the tile
// unit, built with the AMX flags (CMakeLists.txt, by file name) and called
// only where the CPU has AMX-BF16 and the kernel granted the tile state
// (quant/cpu_features.cpp). The rules of kernels_avx2.cpp apply: plain
// headers, internal linkage, no standard-library templates.
//
// Tile registers: 0-3 hold the float sums of up to 2 x 2 blocks of 16
// activation rows by 16 weight rows, 4-5 the activation rows (A, 16 rows of
// 32 bf16), 6-7 the weight chunks (B, the panel layout). Every tile is 16
// rows of 64 bytes, configured on entry and released on return, so a call
// leaves no tile state behind. The sums come out in the output's layout
// (activation rows of weight columns) and are stored straight into it.
//
// Written on a machine without AMX, and not yet run on one: before the AMX
// table takes it, quant/kernels.cpp checks it against the reference on
// exact data (gemm_bf16_self_check) and drops it with a warning if they
// differ. tests/test_kernels.cpp compares it with gemm_bf16_ref wherever the
// CPU has AMX, and the backend-op suite runs mul_mat through it there; on
// other CPUs both run it over an emulated tile unit (tests/emulated.h).
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

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

void configure_tiles() {
    _tile_loadconfig(&kTileConfig);
}

// Sums of one block of up to 32 activation rows (one or two A tiles, 16
// rows each, x_stride apart) with up to 32 weight rows (one or two panels),
// over every chunk: tile 2 * ta + tb holds activation rows 16 ta.. by weight
// rows 16 tb.. of the block.
template <bool TwoA, bool TwoB>
void block_sums(int64_t chunks, const char* x, size_t x_stride, const char* w0, const char* w1) {
    _tile_zero(0);
    if (TwoB) _tile_zero(1);
    if (TwoA) _tile_zero(2);
    if (TwoA && TwoB) _tile_zero(3);
    const char* x1 = x + 16 * x_stride;
    for (int64_t c = 0; c < chunks; ++c) {
        _tile_loadd(4, x + c * 64, x_stride);
        _tile_loadd(6, w0 + c * kBf16ChunkBytes, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (TwoB) {
            _tile_loadd(7, w1 + c * kBf16ChunkBytes, 64);
            _tile_dpbf16ps(1, 4, 7);
        }
        if (TwoA) {
            _tile_loadd(5, x1 + c * 64, x_stride);
            _tile_dpbf16ps(2, 5, 6);
            if (TwoB) _tile_dpbf16ps(3, 5, 7);
        }
    }
}

// Tile t (activation rows 16 (t / 2).., weight rows 16 (t % 2)..) of the
// block at `out` (its first row and column): a full tile straight into the
// output, a ragged one (rows past n or columns past m) through `edge`.
// (GCC's intrinsic spells the register number into the instruction: a
// literal, hence the switch.)
void store_tile(int t, float* out, size_t out_stride, int64_t rows, int64_t cols, float (*edge)[16]) {
    char* at = reinterpret_cast<char*>(out) + size_t(16 * (t / 2)) * out_stride + size_t(64 * (t % 2));
    const bool full = rows >= 16 && cols >= 16;
    char* dst = full ? at : reinterpret_cast<char*>(edge);
    const size_t stride = full ? out_stride : 64;
    switch (t) {
        case 0: _tile_stored(0, dst, stride); break;
        case 1: _tile_stored(1, dst, stride); break;
        case 2: _tile_stored(2, dst, stride); break;
        default: _tile_stored(3, dst, stride); break;
    }
    if (full) return;
    for (int64_t r = 0; r < rows; ++r) std::memcpy(at + size_t(r) * out_stride, edge[r], sizeof(float) * size_t(cols));
}

void gemm_bf16_amx(int64_t k_pad, int64_t m, int64_t n, const void* w, const uint16_t* x, size_t x_stride, float* out,
                   size_t out_stride) {
    if (m <= 0 || n <= 0) return;
    configure_tiles();
    const int64_t chunks = k_pad / kBf16Chunk;
    const auto* w0 = static_cast<const char*>(w);
    const char* w1 = w0 + size_t(chunks) * kBf16ChunkBytes;
    const bool two_b = m > 16;
    alignas(64) float edge[16][16];
    for (int64_t j0 = 0; j0 < n; j0 += 2 * kBf16PanelRows) {
        const bool two_a = j0 + kBf16PanelRows < n;
        const char* xb = reinterpret_cast<const char*>(x) + size_t(j0) * x_stride;
        if (two_a && two_b) block_sums<true, true>(chunks, xb, x_stride, w0, w1);
        if (two_a && !two_b) block_sums<true, false>(chunks, xb, x_stride, w0, w1);
        if (!two_a && two_b) block_sums<false, true>(chunks, xb, x_stride, w0, w1);
        if (!two_a && !two_b) block_sums<false, false>(chunks, xb, x_stride, w0, w1);
        float* ob = reinterpret_cast<float*>(reinterpret_cast<char*>(out) + size_t(j0) * out_stride);
        const int64_t rows0 = min64(16, n - j0), cols0 = min64(16, m);
        store_tile(0, ob, out_stride, rows0, cols0, edge);
        if (two_b) store_tile(1, ob, out_stride, rows0, m - 16, edge);
        if (two_a) {
            const int64_t rows1 = min64(16, n - j0 - 16);
            store_tile(2, ob, out_stride, rows1, cols0, edge);
            if (two_b) store_tile(3, ob, out_stride, rows1, m - 16, edge);
        }
    }
    _tile_release();
}

}  // namespace

void fill_gemm_amx(Bf16GemmFn* gemm_bf16) {
    *gemm_bf16 = gemm_bf16_amx;
}

}  // namespace moelite
