// Test-only: the AMX tile unit in software, and quant/gemm_amx.cpp built over
// it, so that kernel runs on machines without AMX (see tests/emulated.h).
//
// The emulation follows Intel's definitions (SDM, "Intel AMX" instructions):
// eight tile registers of up to 16 rows of 64 bytes, shaped by LDTILECFG's
// palette 1; TILELOADD reads `rows` rows of `colsb` bytes at the given stride
// and zeroes the rest of the register; TILESTORED writes `rows` rows of
// `colsb` bytes; TDPBF16PS adds, for each output float, the two products of a
// bf16 pair in turn (denormal inputs read as zero, denormal results flushed).
// A use the hardware would refuse (#GP or #UD: a bad configuration, a tile
// used before configuration or with zero rows, shapes that do not chain, a
// register used twice in one product) does nothing but is counted, with the
// first one described, for the tests to check.
//
// Built with baseline flags: the tile instructions become calls here, and the
// kernel has no other wide instruction.
#include <immintrin.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include "tests/emulated.h"

namespace moelite::test {
namespace {

struct TileState {
    bool configured = false;
    uint16_t colsb[8] = {};
    uint8_t rows[8] = {};
    alignas(64) uint8_t data[8][16][64] = {};
};

thread_local TileState tiles;
std::atomic<int> fault_count{0};
std::mutex fault_mutex;
std::string first_fault;

void fault(const std::string& what) {
    if (fault_count.fetch_add(1) == 0) {
        std::lock_guard<std::mutex> lock(fault_mutex);
        first_fault = what;
    }
}

bool usable(int t, const char* op) {
    if (!tiles.configured) {
        fault(std::string(op) + ": tiles not configured");
        return false;
    }
    if (t < 0 || t >= 8) {
        fault(std::string(op) + ": tile " + std::to_string(t) + " does not exist");
        return false;
    }
    if (tiles.rows[t] == 0 || tiles.colsb[t] == 0) {
        fault(std::string(op) + ": tile " + std::to_string(t) + " has no shape");
        return false;
    }
    return true;
}

void tile_loadconfig(const void* config) {
    uint8_t c[64];
    std::memcpy(c, config, 64);
    const uint8_t palette = c[0];
    if (palette == 0) {  // palette 0: back to the initial state
        tiles = TileState{};
        return;
    }
    bool ok = palette == 1;
    for (int i = 2; i < 16; ++i) ok = ok && c[i] == 0;
    TileState s;
    for (int t = 0; t < 16; ++t) {
        uint16_t colsb;
        std::memcpy(&colsb, c + 16 + 2 * t, 2);
        const uint8_t rows = c[48 + t];
        if (t >= 8) {
            ok = ok && colsb == 0 && rows == 0;
        } else {
            ok = ok && colsb <= 64 && rows <= 16 && (colsb == 0) == (rows == 0);
            s.colsb[t] = colsb;
            s.rows[t] = rows;
        }
    }
    if (c[1] != 0) ok = false;  // start_row: only an interrupted load leaves it set
    if (!ok) {
        fault("ldtilecfg: invalid configuration");
        return;
    }
    s.configured = true;
    tiles = s;
}

void tile_release() {
    tiles = TileState{};
}

void tile_zero(int t) {
    if (usable(t, "tilezero")) std::memset(tiles.data[t], 0, sizeof(tiles.data[t]));
}

void tile_loadd(int t, const void* base, long stride) {
    if (!usable(t, "tileloadd")) return;
    std::memset(tiles.data[t], 0, sizeof(tiles.data[t]));
    for (int r = 0; r < tiles.rows[t]; ++r)
        std::memcpy(tiles.data[t][r], static_cast<const char*>(base) + r * stride, tiles.colsb[t]);
}

void tile_stored(int t, void* base, long stride) {
    if (!usable(t, "tilestored")) return;
    for (int r = 0; r < tiles.rows[t]; ++r)
        std::memcpy(static_cast<char*>(base) + r * stride, tiles.data[t][r], tiles.colsb[t]);
}

float bf16_in(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    uint32_t bits = uint32_t(h) << 16;
    if ((bits & 0x7f800000u) == 0) bits &= 0x80000000u;  // denormal: zero
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

float flush(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7f800000u) == 0) bits &= 0x80000000u;
    std::memcpy(&f, &bits, 4);
    return f;
}

void tile_dpbf16ps(int c, int a, int b) {
    if (!usable(c, "tdpbf16ps") || !usable(a, "tdpbf16ps") || !usable(b, "tdpbf16ps")) return;
    if (c == a || c == b || a == b) {
        fault("tdpbf16ps: a register used twice");
        return;
    }
    const int m_rows = tiles.rows[c], k_pairs = tiles.colsb[a] / 4, n_cols = tiles.colsb[c] / 4;
    if (tiles.rows[a] != m_rows || tiles.rows[b] != k_pairs || tiles.colsb[b] != tiles.colsb[c] ||
        tiles.colsb[a] % 4 != 0 || tiles.colsb[c] % 4 != 0) {
        fault("tdpbf16ps: shapes do not chain (c " + std::to_string(tiles.rows[c]) + "x" +
              std::to_string(tiles.colsb[c]) + ", a " + std::to_string(tiles.rows[a]) + "x" +
              std::to_string(tiles.colsb[a]) + ", b " + std::to_string(tiles.rows[b]) + "x" +
              std::to_string(tiles.colsb[b]) + ")");
        return;
    }
    for (int m = 0; m < m_rows; ++m) {
        float acc[16];
        std::memcpy(acc, tiles.data[c][m], sizeof(acc));
        for (int k = 0; k < k_pairs; ++k) {
            for (int n = 0; n < n_cols; ++n) {
                acc[n] = flush(acc[n] + bf16_in(&tiles.data[a][m][4 * k]) * bf16_in(&tiles.data[b][k][4 * n]));
                acc[n] = flush(acc[n] + bf16_in(&tiles.data[a][m][4 * k + 2]) * bf16_in(&tiles.data[b][k][4 * n + 2]));
            }
        }
        std::memset(tiles.data[c][m], 0, 64);
        std::memcpy(tiles.data[c][m], acc, size_t(n_cols) * 4);
    }
}

}  // namespace

std::string amx_emulator_faults() {
    const int n = fault_count.load();
    if (n == 0) return {};
    std::lock_guard<std::mutex> lock(fault_mutex);
    return std::to_string(n) + " faults, the first: " + first_fault;
}

}  // namespace moelite::test

// The kernel, its tile instructions taken by the emulation above, its
// registration function renamed.
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#define _tile_loadconfig(config) ::moelite::test::tile_loadconfig(config)
#define _tile_release() ::moelite::test::tile_release()
#define _tile_zero(t) ::moelite::test::tile_zero(t)
#define _tile_loadd(t, base, stride) ::moelite::test::tile_loadd(t, base, long(stride))
#define _tile_stored(t, base, stride) ::moelite::test::tile_stored(t, base, long(stride))
#define _tile_dpbf16ps(c, a, b) ::moelite::test::tile_dpbf16ps(c, a, b)
#define fill_gemm_amx fill_gemm_amx_over_emulator
#include "quant/gemm_amx.cpp"
#undef fill_gemm_amx

namespace moelite::test {

void fill_gemm_amx_emulated(Bf16GemmFn* gemm_bf16) {
    fill_gemm_amx_over_emulator(gemm_bf16);
}

}  // namespace moelite::test
