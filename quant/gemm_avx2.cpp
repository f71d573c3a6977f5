// AVX2 tile kernels (quant/gemm.h) for the weight types that dominate model
// files: Q4_0, Q5_0 and Q8_0 (Q8_0 activations), Q4_K, Q5_K and Q6_K (Q8_K
// activations). Each computes what the AVX2 vec_dot of quant/kernels_avx2.cpp computes,
// with the same exact integer parts; only float additions are reordered.
//
// Shapes. Legacy types (32 per block) run register tiles of MR weight rows by
// NR activation rows: per block, each activation row is loaded once for the
// MR weight rows and each weight block is unpacked once for the NR activation
// rows. Prefill uses 4 x 2. Decode (one activation row) uses 1 x 1, one
// weight row at a time: 4 x 1 and 2 x 1, faster on L1-resident rows, made
// whole-model decode 30-40 % slower when the weights stream from memory
// (measured on the Q4_0 file: 15.6 t/s with vec_dot, 11 with 4 x 1, 9.5 with
// 2 x 1, 16.0 with 1 x 1), presumably by interleaving several weight streams. K-quants are 1 x NR
// (NR = 4): a super-block of one weight row is unpacked and its scales
// broadcast once for NR activation rows, whose integer sums stay in registers
// for the whole super-block. Ragged edges (m or n not a multiple of the tile)
// run the smaller instantiations of the same templates.
//
// Tricks: Q4_0 / Q5_0 quants go into maddubs unsigned (0..15, 0..31), and
// the offset 8 / 16 comes out as offset * sum(activation quants), computed
// once per activation block for all weight rows; the K-quant mins and the
// Q6_K offset 32 come out of the Q8_K per-16 sums, as in vec_dot.
//
// Measured (tests/test_kernels.cpp, "tile speed", 16 rows of 1536, one
// thread, a loaded 2-core Zen 2, +-30%): per output against vec_dot loops,
// decode (1 activation row) x1.1-1.6, prefill (64 rows) x1.3-2.0. Tried and
// dropped: 8 x 1 for decode (no better, and see above), two accumulator sets
// for 1 x 1 (no better), and the MR weight scales gathered into one f16
// conversion per block, then vpermps per row (worse).
//
// Built with AVX2 flags; only fill_gemm_avx2 has external linkage (see
// quant/kernels_isa.h and quant/simd_avx2.h).
#include "quant/kernels_isa.h"
#include "quant/simd_avx2.h"

namespace moelite {
namespace {

// ------------------------------------------------ legacy quants, 32 per block

// Q4_0 weight block as maddubs wants it: unsigned nibbles, the -8 taken off by
// the activation side's correction.
struct Q4_0Rows {
    using Block = BlockQ4_0;
    static constexpr int kOffset = 8;
    struct Unpacked {
        __m256i q;
    };
    static Unpacked unpack(const Block& b) { return {unpack_nibbles(b.qs)}; }
    // pairs <= 2 * 15 * 127
    static __m256i dot(const Unpacked& w, __m256i y) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(w.q, y), _mm256_set1_epi16(1));
    }
};

// Q5_0 weight block: five bits unsigned (0..31), the -16 taken off as Q4_0's -8.
struct Q5_0Rows {
    using Block = BlockQ5_0;
    static constexpr int kOffset = 16;
    struct Unpacked {
        __m256i q;
    };
    static Unpacked unpack(const Block& b) { return {_mm256_or_si256(unpack_nibbles(b.qs), q5_high_bits(b.qh))}; }
    // pairs <= 2 * 31 * 127
    static __m256i dot(const Unpacked& w, __m256i y) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(w.q, y), _mm256_set1_epi16(1));
    }
};

// Q8_0 weight block: |x| once per block, x's sign moved onto each activation.
struct Q8_0Rows {
    using Block = BlockQ8_0;
    static constexpr int kOffset = 0;
    struct Unpacked {
        __m256i abs, sign;
    };
    static Unpacked unpack(const Block& b) {
        const __m256i q = load256(b.qs);
        return {_mm256_sign_epi8(q, q), q};
    }
    // |x| <= 128, |y| <= 127: pairs within 32512
    static __m256i dot(const Unpacked& w, __m256i y) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(w.abs, _mm256_sign_epi8(y, w.sign)), _mm256_set1_epi16(1));
    }
};

// MR weight rows by NR activation rows over nb blocks.
// Weights stream from memory once per token in decode, and the hardware
// prefetchers alone leave each core waiting on them: a software prefetch
// kPrefetchBytes ahead in the weight rows (a thread's rows are contiguous, so
// this runs on into its next rows; past the end of the tensor it is a harmless
// hint), one per cache line of each block, raised whole-model decode on this
// 2-core Zen 2 (tg32, 2 threads, alternating runs): Q4_0 1.5B 16.7 -> 19.7
// t/s, Q8_0 12.1 -> 15.7, Q4_K_M 17.7 -> 23.1, V2-Lite 8-layer Q4_K_M
// 29.5 -> 35.5; 512 bytes ahead gave about half of it, 2048-8192 the same.
// Prefill (weights reused from cache) is unchanged.
// A tile of one activation row (kOnce: decode) reads each weight line once
// per token, and prefetches it non-temporal (NTA: into L1, presumably not
// kept on the way out, where a T0 line goes on to L2 and Zen 2's victim L3,
// evicting data that is read again): tg64 of the four bench files 2-4 %
// faster, 25 of 26 rounds won (bench/README.md). Tiles of several rows keep
// T0: their weights are read again for the next activation rows.
constexpr int kPrefetchBytes = 4096;
template <bool kOnce, class Block>
inline void prefetch_ahead(const Block* b) {
    const char* p = reinterpret_cast<const char*>(b) + kPrefetchBytes;
    for (size_t o = 0; o < sizeof(Block); o += 64) _mm_prefetch(p + o, kOnce ? _MM_HINT_NTA : _MM_HINT_T0);
}
template <class Rows, int MR, int NR>
void tile_q32(int64_t nb, const char* w, size_t w_stride, const void* const* x, float* const* out) {
    using Block = typename Rows::Block;
    __m256 acc[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
    const Block* wr[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) wr[i] = reinterpret_cast<const Block*>(w + size_t(i) * w_stride);
    const BlockQ8_0* xr[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) xr[j] = static_cast<const BlockQ8_0*>(x[j]);

    for (int64_t b = 0; b < nb; ++b) {
        __m256i y[NR], offset[NR];
        __m256 dy[NR];
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) {
            y[j] = load256(xr[j][b].qs);
            dy[j] = _mm256_set1_ps(h2f(xr[j][b].d));
            // offset * sum(y) per group of 4, lane by lane as dot() sums
            if constexpr (Rows::kOffset != 0) offset[j] = dot_u8_i8(_mm256_set1_epi8(Rows::kOffset), y[j]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            prefetch_ahead<NR == 1>(wr[i] + b);
            const typename Rows::Unpacked q = Rows::unpack(wr[i][b]);
            const __m256 dw = _mm256_set1_ps(h2f(wr[i][b].d));
#pragma GCC unroll 8
            for (int j = 0; j < NR; ++j) {
                __m256i sumi = Rows::dot(q, y[j]);
                if constexpr (Rows::kOffset != 0) sumi = _mm256_sub_epi32(sumi, offset[j]);
                acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dy[j]), _mm256_cvtepi32_ps(sumi), acc[i][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) out[j][i] = hsum_ps(acc[i][j]);
}

// ------------------------------------------------------ K-quants, 256 per block

// One Q4_K or Q5_K weight row by NR activation rows. Q5_K element 64s + l
// takes its fifth bit from bit 2s of qh[l], element 64s + 32 + l from bit
// 2s + 1.
template <class Block, int NR>
void tile_q45_K(int64_t nb, const char* w, size_t, const void* const* x, float* const* out) {
    constexpr bool kFifthBit = sizeof(Block) == sizeof(BlockQ5_K);
    const auto* wr = reinterpret_cast<const Block*>(w);
    const BlockQ8_K* xr[NR];
    __m256 acc[NR];
    float min_acc[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
        xr[j] = static_cast<const BlockQ8_K*>(x[j]);
        acc[j] = _mm256_setzero_ps();
        min_acc[j] = 0.0f;
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < nb; ++b) {
        const Block& wb = wr[b];
        prefetch_ahead<NR == 1>(&wb);
        alignas(16) uint8_t scales[8], mins[8];
        unpack_scales_k4(wb.scales, scales, mins);
        const float d = h2f(wb.d), dmin = h2f(wb.dmin);
        __m256i sumi[NR];
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) sumi[j] = _mm256_setzero_si256();
            // maddubs pairs <= 2 * 31 * 127; madd by scale <= 63: all fits int32
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
            const __m256i q = load256(wb.qs + 32 * s);
            __m256i lo = _mm256_and_si256(q, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if constexpr (kFifthBit) {
                const __m256i qh = load256(wb.qh);
                lo = _mm256_or_si256(lo, bit_at(qh, 2 * s, 4));
                hi = _mm256_or_si256(hi, bit_at(qh, 2 * s + 1, 4));
            }
            const __m256i sc_lo = _mm256_set1_epi16(scales[2 * s]), sc_hi = _mm256_set1_epi16(scales[2 * s + 1]);
#pragma GCC unroll 8
            for (int j = 0; j < NR; ++j) {
                const __m256i p_lo = _mm256_maddubs_epi16(lo, load256(xr[j][b].qs + 64 * s));
                const __m256i p_hi = _mm256_maddubs_epi16(hi, load256(xr[j][b].qs + 64 * s + 32));
                sumi[j] = _mm256_add_epi32(
                    sumi[j], _mm256_add_epi32(_mm256_madd_epi16(p_lo, sc_lo), _mm256_madd_epi16(p_hi, sc_hi)));
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) {
            const float dy = xr[j][b].d;
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
            min_acc[j] += dmin * dy * float(k4_min_sum(mins, xr[j][b].bsums));
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) out[j][0] = hsum_ps(acc[j]) - min_acc[j];
}

// One Q6_K weight row by NR activation rows: x = d * sc * (q - 32), quants
// unsigned (0..63), the offset taken off in integers through the Q8_K sums.
template <int NR>
void tile_q6_K(int64_t nb, const char* w, size_t, const void* const* x, float* const* out) {
    const auto* wr = reinterpret_cast<const BlockQ6_K*>(w);
    const BlockQ8_K* xr[NR];
    __m256 acc[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
        xr[j] = static_cast<const BlockQ8_K*>(x[j]);
        acc[j] = _mm256_setzero_ps();
    }
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i low2 = _mm256_set1_epi8(0x03);
    for (int64_t b = 0; b < nb; ++b) {
        const BlockQ6_K& wb = wr[b];
        prefetch_ahead<NR == 1>(&wb);
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(wb.scales));
        __m256i sumi[NR];
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) {
            // |.| <= 2 * 128 * 2032; the offset 32 is a shift by 5
            const __m256i offset = _mm256_madd_epi16(sc16, load256(xr[j][b].bsums));
            sumi[j] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
        }
        // Each half of 128: four runs of 32, run r using scales 2r and 2r + 1
        // of the half. maddubs pairs <= 2 * 63 * 127; madd by |sc| <= 128.
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = wb.ql + 64 * h;
            const int8_t* sc = wb.scales + 8 * h;
            const __m256i ql0 = load256(ql), ql1 = load256(ql + 32);
            const __m256i qh = load256(wb.qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
#pragma GCC unroll 4
            for (int r = 0; r < 4; ++r) {
                const __m256i scale = scale_pair(sc[2 * r], sc[2 * r + 1]);
#pragma GCC unroll 8
                for (int j = 0; j < NR; ++j) {
                    const __m256i p = _mm256_maddubs_epi16(q[r], load256(xr[j][b].qs + 128 * h + 32 * r));
                    sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p, scale));
                }
            }
        }
        const float d = h2f(wb.d);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) {
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * xr[j][b].d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) out[j][0] = hsum_ps(acc[j]);
}

// ---------------------------------------------------------------- drivers

// The MR x NR instantiation for a ragged tile of mr <= MR rows by nr <= NR.
template <class Rows, int MR, int NR>
void tile_q32_ragged(int mr, int nr, int64_t nb, const char* w, size_t ws, const void* const* x, float* const* out) {
    if constexpr (MR > 1) {
        if (mr < MR) return tile_q32_ragged<Rows, MR - 1, NR>(mr, nr, nb, w, ws, x, out);
    }
    if constexpr (NR > 1) {
        if (nr < NR) return tile_q32_ragged<Rows, MR, NR - 1>(mr, nr, nb, w, ws, x, out);
    }
    tile_q32<Rows, MR, NR>(nb, w, ws, x, out);
}

// Covers m x n with MR x NR tiles, n-tile outer so that NR activation rows
// stay in L1 while the weight rows pass.
template <class Rows, int MR, int NR>
void gemm_q32_tiled(int64_t k, int64_t m, int64_t n, const char* w, size_t ws, const void* const* x,
                    float* const* out) {
    const int64_t nb = k / kQK8_0;
    for (int64_t j = 0; j < n; j += NR) {
        const int nr = int(n - j < NR ? n - j : NR);
        float* out_shifted[NR];
        for (int64_t i = 0; i < m; i += MR) {
            const int mr = int(m - i < MR ? m - i : MR);
            for (int c = 0; c < nr; ++c) out_shifted[c] = out[j + c] + i;
            tile_q32_ragged<Rows, MR, NR>(mr, nr, nb, w + size_t(i) * ws, ws, x + j, out_shifted);
        }
    }
}

template <class Rows>
void gemm_q32(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x, float* const* out) {
    const char* wc = static_cast<const char*>(w);
    if (n == 1) {
        gemm_q32_tiled<Rows, 1, 1>(k, m, n, wc, ws, x, out);
    } else {
        gemm_q32_tiled<Rows, 4, 2>(k, m, n, wc, ws, x, out);
    }
}

using RowTileFn = void (*)(int64_t nb, const char* w, size_t ws, const void* const* x, float* const* out);

// Covers m x n with one weight row by up to NR activation rows at a time;
// `tiles[c]` handles c + 1 activation rows.
template <int NR>
void gemm_rows(const RowTileFn (&tiles)[NR], int64_t k, int64_t m, int64_t n, const void* w, size_t ws,
               const void* const* x, float* const* out) {
    const char* wc = static_cast<const char*>(w);
    const int64_t nb = k / kQK_K;
    for (int64_t j = 0; j < n; j += NR) {
        const int nr = int(n - j < NR ? n - j : NR);
        float* out_shifted[NR];
        for (int64_t i = 0; i < m; ++i) {
            for (int c = 0; c < nr; ++c) out_shifted[c] = out[j + c] + i;
            tiles[nr - 1](nb, wc + size_t(i) * ws, ws, x + j, out_shifted);
        }
    }
}

constexpr int kKQuantCols = 4;
constexpr RowTileFn kQ4KTiles[kKQuantCols] = {tile_q45_K<BlockQ4_K, 1>, tile_q45_K<BlockQ4_K, 2>,
                                              tile_q45_K<BlockQ4_K, 3>, tile_q45_K<BlockQ4_K, 4>};
constexpr RowTileFn kQ5KTiles[kKQuantCols] = {tile_q45_K<BlockQ5_K, 1>, tile_q45_K<BlockQ5_K, 2>,
                                              tile_q45_K<BlockQ5_K, 3>, tile_q45_K<BlockQ5_K, 4>};
constexpr RowTileFn kQ6KTiles[kKQuantCols] = {tile_q6_K<1>, tile_q6_K<2>, tile_q6_K<3>, tile_q6_K<4>};

void gemm_q4_K(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x, float* const* out) {
    gemm_rows(kQ4KTiles, k, m, n, w, ws, x, out);
}

void gemm_q5_K(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x, float* const* out) {
    gemm_rows(kQ5KTiles, k, m, n, w, ws, x, out);
}

void gemm_q6_K(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x, float* const* out) {
    gemm_rows(kQ6KTiles, k, m, n, w, ws, x, out);
}

}  // namespace

void fill_gemm_avx2(GemmFn* gemm) {
    gemm[uint32_t(DType::Q4_0)] = gemm_q32<Q4_0Rows>;
    gemm[uint32_t(DType::Q8_0)] = gemm_q32<Q8_0Rows>;
    gemm[uint32_t(DType::Q5_0)] = gemm_q32<Q5_0Rows>;
    gemm[uint32_t(DType::Q4_K)] = gemm_q4_K;
    gemm[uint32_t(DType::Q5_K)] = gemm_q5_K;
    gemm[uint32_t(DType::Q6_K)] = gemm_q6_K;
}

}  // namespace moelite
