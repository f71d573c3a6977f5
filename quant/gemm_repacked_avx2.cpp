// AVX2 tile kernels over repacked weights (quant/repack.h): Q4_0, Q5_0 and
// Q8_0 (Q8_0 activations with their scales as floats; Q4_0 and Q5_0 rows
// also carry their block sums times the weights' offset) and
// Q4_K and Q6_K (Q8_K activations), in groups of 8 rows; and repacking's byte
// shuffle (repack_chunks at the end).
//
// The idea, on Q4_0: one group block (8 rows x 32 elements) against one
// activation block: the four 32-byte chunks give, after masking, 8 registers
// of 8 rows x 4 consecutive unsigned quants (one row per 32-bit lane); each
// meets the 4 matching activation bytes broadcast to every lane. maddubs
// makes the products and adds pairs; the 8 results are added as int16 (each
// pair is at most 2 * 15 * 127 = 3810, the 8 at most 30480: no overflow) and
// one madd by 1 finishes the 8 lane sums. The offset 8 of the weights comes
// off as 8 * (the block's activation sum), and the 8 fp16 scales of the
// group, converted once, scale all 8 lanes with one multiply. Against the
// plain tile (quant/gemm_avx2.cpp) that is 9 multiplies instead of 16 per 8
// block dots and one float update instead of 8, and no horizontal sums. The
// other types follow the same plan within their own bounds (see each tile).
//
// Each call computes one group of 8 rows by NR activation rows (NR <= 4 fits
// the 16 ymm registers); the group's blocks are unpacked once for the NR
// rows. Decode (one row) streams the group's blocks with a software prefetch
// as the plain tiles do.
//
// Measured ("tile speed" in tests/test_kernels.cpp, 16 rows of 1536, one
// thread, ns per output, plain tiles -> repacked): decode Q4_0 89 -> 28,
// Q5_0 115 -> 47, Q8_0 79 -> 39, Q4_K 61 -> 28, Q6_K 85 -> 56; prefill (64
// rows) Q4_0 66 -> 21, Q5_0 85 -> 26, Q8_0 60 -> 34, Q4_K 46 -> 20, Q6_K
// 46 -> 29.
// In prefill the multiplies bound them: this Zen 2 issues one vpmaddubsw or
// vpmaddwd a cycle (a loop of independent ones: 0.30 ns each at about
// 3.35 GHz, against 0.10 for vpaddd), and Q4_0 needs 9 per 8 rows x 32
// elements, which 20.8 ns per output makes 11.6 cycles.
//
// Built with AVX2 flags; only fill_gemm_repacked_avx2 has external linkage.
#include <cstring>

#include "quant/kernels_isa.h"
#include "quant/simd_avx2.h"

namespace moelite {
namespace {

constexpr int kGroupRows = 8;  // kRepackRows of quant/repack.h (plain headers only here)

// Where a converted row of k elements keeps its extras (quant/repack.cpp):
// the blocks' scales as floats, then (Q4_0, Q5_0) the offset block sums.
inline size_t extras_offset(int64_t k) {
    return (size_t(k / kQK8_0) * sizeof(BlockQ8_0) + 3) / 4 * 4;
}

constexpr int kCols = 4;  // activation rows per tile call, at most

// Up to kCols activation rows of Q8_0 blocks and their extras.
struct Q8Rows {
    const BlockQ8_0* q[kCols];
    const float* d[kCols];       // the blocks' scales
    const int32_t* sums[kCols];  // Q4_0, Q5_0: offset times each block's quant sum
};

inline __m256i broadcast32(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Marks an integer sum as updated here. Without it GCC 12 (-O3) computes
// all of a block's products of a several-row tile first and sums them at
// the end, which needs more than 16 registers: the Q4_0 4-row tile kept 61
// of its 271 instructions on the stack ("tile speed", 64 rows: 26 ns per
// output of 1536 with the spills, 23 without). In decode tiles it cost
// ~2 % (tg64 Q4_0, 8 rounds), so those are left to the compiler.
inline void in_order(__m256i& v) {
    asm("" : "+x"(v));
}

constexpr int kPrefetchBytes = 4096;  // as the plain tiles (quant/gemm_avx2.cpp)

// Block b of a group (quant/repack.h): its fp16 fields, then its chunks.
inline const uint8_t* group_block(const uint8_t* group, int64_t b, size_t chunk_bytes, size_t field_bytes) {
    return group + size_t(b) * (chunk_bytes + field_bytes);
}

// One prefetch per line of a block, kPrefetchBytes ahead; non-temporal in
// decode (kOnce), as the plain tiles' prefetch_ahead.
template <bool kOnce>
inline void prefetch_block(const uint8_t* block, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(block) + o + kPrefetchBytes, kOnce ? _MM_HINT_NTA : _MM_HINT_T0);
}

// Q5_0 block of a group: d[8] among the fields; the rows' qh words (lane r:
// row r's 32 fifth bits), then qs as Q4_0, among the chunks. Chunk c's fifth bits are bits 4c..4c+3
// (low nibbles) and 16+4c..16+4c+3 (high nibbles) of each lane: the byte
// holding them is copied into the lane's 4 bytes (pshufb), each byte tests
// its own bit and keeps 0x10. Quants 0..31 go in unsigned: 4 maddubs sum in
// int16 (4 * 2 * 31 * 127 = 31496), so two madds per block; the offset 16
// comes off as 16 * (the activation block's sum).
alignas(32) constexpr uint8_t kQ5Spread[4][32] = {
    {0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12},
    {1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9, 13, 13, 13, 13, 1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9, 9, 13, 13, 13, 13},
    {2, 2, 2, 2, 6, 6, 6, 6, 10, 10, 10, 10, 14, 14, 14, 14, 2, 2, 2, 2, 6, 6, 6, 6, 10, 10, 10, 10, 14, 14, 14, 14},
    {3, 3, 3, 3, 7, 7, 7, 7, 11, 11, 11, 11, 15, 15, 15, 15, 3, 3, 3, 3, 7, 7, 7, 7, 11, 11, 11, 11, 15, 15, 15, 15}};

// Bit 4 of each byte: bit (4 * nibble + t) of byte `byte` of the lane's qh word, for the lane's byte t.
inline __m256i q5_fifth_bits(__m256i qh, int byte, int nibble) {
    const __m256i spread =
        _mm256_shuffle_epi8(qh, _mm256_load_si256(reinterpret_cast<const __m256i*>(kQ5Spread[byte])));
    const __m256i bit = nibble ? _mm256_set1_epi32(int(0x80402010)) : _mm256_set1_epi32(0x08040201);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

// Q4_0 (kFifthBit false: 4 chunks of qs a block) and Q5_0 (the qh chunk,
// then the qs chunks) groups by NR rows; d[8] of each block in the fields.
template <bool kFifthBit, int NR>
void tile_q45_0_r8(int64_t nb, const uint8_t* group, const Q8Rows& x, float* const* out) {
    constexpr size_t kChunks = kGroupRows * (kFifthBit ? sizeof(BlockQ5_0) - 2 : sizeof(BlockQ4_0) - 2);
    constexpr size_t kQs = kFifthBit ? 32 : 0;
    __m256 acc[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[j] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* fields = group_block(group, b, kChunks, 16);
        const uint8_t* gb = fields + 16;
        prefetch_block<NR == 1>(fields, kChunks + 16);
        const __m256i qh = kFifthBit ? load256(gb) : _mm256_setzero_si256();
        // Q4_0: one int16 sum of all 8 maddubs (<= 30480); Q5_0: one per nibble half.
        __m256i p_lo[NR], p_hi[NR];
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            const __m256i packed = load256(gb + kQs + 32 * c);
            __m256i lo = _mm256_and_si256(packed, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
            if constexpr (kFifthBit) {
                lo = _mm256_or_si256(lo, q5_fifth_bits(qh, c / 2, c % 2));
                hi = _mm256_or_si256(hi, q5_fifth_bits(qh, 2 + c / 2, c % 2));
            }
#pragma GCC unroll 4
            for (int j = 0; j < NR; ++j) {
                const __m256i tl = _mm256_maddubs_epi16(lo, broadcast32(x.q[j][b].qs + 4 * c));
                const __m256i th = _mm256_maddubs_epi16(hi, broadcast32(x.q[j][b].qs + 16 + 4 * c));
                if constexpr (kFifthBit) {
                    p_lo[j] = c == 0 ? tl : _mm256_add_epi16(p_lo[j], tl);
                    p_hi[j] = c == 0 ? th : _mm256_add_epi16(p_hi[j], th);
                    if constexpr (NR > 1) in_order(p_hi[j]);
                } else {
                    const __m256i t = _mm256_add_epi16(tl, th);
                    p_lo[j] = c == 0 ? t : _mm256_add_epi16(p_lo[j], t);
                }
                if constexpr (NR > 1) in_order(p_lo[j]);
            }
        }
        const __m256 dw = _mm256_cvtph_ps(load128(fields));
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
            __m256i sumi = _mm256_madd_epi16(p_lo[j], ones);
            if constexpr (kFifthBit) sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p_hi[j], ones));
            sumi = _mm256_sub_epi32(sumi, _mm256_set1_epi32(x.sums[j][b]));
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x.d[j][b])), _mm256_cvtepi32_ps(sumi), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) _mm256_storeu_ps(out[j], acc[j]);
}

// Q8_0 block of a group: d[8] among the fields, 8 chunks of 8 rows x 4 quants.
// Signed by signed: |w| into maddubs, w's sign moved onto the broadcast
// activation (pairs within 2 * 128 * 127: one madd per chunk).
template <int NR>
void tile_q8_0_r8(int64_t nb, const uint8_t* group, const Q8Rows& x, float* const* out) {
    constexpr size_t kChunks = kGroupRows * kQK8_0;
    __m256 acc[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[j] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* fields = group_block(group, b, kChunks, 16);
        const uint8_t* gb = fields + 16;
        prefetch_block<NR == 1>(fields, kChunks + 16);
        __m256i sumi[NR];
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
            const __m256i q = load256(gb + 32 * c);
            const __m256i abs_q = _mm256_sign_epi8(q, q);
#pragma GCC unroll 4
            for (int j = 0; j < NR; ++j) {
                const __m256i y = _mm256_sign_epi8(broadcast32(x.q[j][b].qs + 4 * c), q);
                const __m256i t = _mm256_madd_epi16(_mm256_maddubs_epi16(abs_q, y), ones);
                sumi[j] = c == 0 ? t : _mm256_add_epi32(sumi[j], t);
                if constexpr (NR > 1) in_order(sumi[j]);
            }
        }
        const __m256 dw = _mm256_cvtph_ps(load128(fields));
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(x.d[j][b])), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) _mm256_storeu_ps(out[j], acc[j]);
}

// pshufb patterns over 32-bit lanes of 4 bytes, the same in both 128-bit
// halves: pattern p < 4 makes the int16 pair (byte p, byte p) of each lane,
// 4 and 5 the pairs (byte 0, byte 1) and (byte 2, byte 3), zero-extended;
// 6 + p puts byte p in the high byte of both int16, 10 and 11 bytes 0 and 1
// and bytes 2 and 3 in the high bytes of the two (an arithmetic shift right
// by 8 then sign-extends them).
struct PickPatterns {
    alignas(32) uint8_t at[12][32];
    constexpr PickPatterns() : at() {
        for (int p = 0; p < 12; ++p)
            for (int i = 0; i < 32; ++i) {
                const int lane = (i % 16) / 4, k = i % 4;  // byte k of lane `lane` of its half
                int lo = p, hi = p;
                if (p == 4 || p == 5) lo = 2 * (p - 4), hi = lo + 1;
                uint8_t v = 0x80;
                if (p >= 10) {
                    if (k % 2 == 1) v = uint8_t(4 * lane + 2 * (p - 10) + k / 2);
                } else if (p >= 6) {
                    if (k % 2 == 1) v = uint8_t(4 * lane + p - 6);
                } else if (k % 2 == 0) {
                    v = uint8_t(4 * lane + (k == 0 ? lo : hi));
                }
                at[p][i] = v;
            }
    }
};
constexpr PickPatterns kPickPair;
inline __m256i pick_pairs(__m256i v, int pattern) {
    return _mm256_shuffle_epi8(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(kPickPair.at[pattern])));
}

// Q4_K block of a group: d[8], dmin[8] among the fields; 3 chunks of the
// rows' packed scales (bytes 0-3, 4-7, 8-11 of each row's 12), 32 of qs. The 6-bit
// scales and mins of the 8 rows unpack together, one row per lane (as
// unpack_scales_k4 does for one row); sub-block j's scale becomes an int16
// pair per lane for the madd that ends its int16 sums, and the mins meet the
// Q8_K sums of 32 (from bsums) in four madds after the sub-blocks. The mins'
// part goes into the same accumulator, so that 4 rows' accumulators, sums
// and int16 sums fit the 16 registers.
template <int NR>
void tile_q4_K_r8(int64_t nb, const uint8_t* group, const BlockQ8_K* const* x, float* const* out) {
    constexpr size_t kChunks = kGroupRows * (sizeof(BlockQ4_K) - 4);
    __m256 acc[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[j] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i low6 = _mm256_set1_epi8(0x3f), low2 = _mm256_set1_epi8(0x03);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* fields = group_block(group, b, kChunks, 32);
        const uint8_t* gb = fields + 32;
        // The scale chunks' lines and the fields here; the quants' as they are read.
        _mm_prefetch(reinterpret_cast<const char*>(gb) + kPrefetchBytes, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(gb) + 64 + kPrefetchBytes, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(fields) + kPrefetchBytes, _MM_HINT_T0);
        // Sub-block sb's scale as int16 pairs, one row per lane.
        __m256i scales[8];
        {
            const __m256i s0 = load256(gb), s2 = load256(gb + 64);
            const __m256i sc03 = _mm256_and_si256(s0, low6);
            const __m256i sc47 = _mm256_or_si256(
                _mm256_and_si256(s2, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(s0, 6), low2), 4));
#pragma GCC unroll 8
            for (int sb = 0; sb < 8; ++sb) scales[sb] = pick_pairs(sb < 4 ? sc03 : sc47, sb % 4);
        }
        __m256i sumi[NR];
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) sumi[j] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int pair = 0; pair < 4; ++pair) {
            // Sub-blocks 2 * pair (low nibbles) and 2 * pair + 1 (high) share their chunks.
#pragma GCC unroll 2
            for (int high = 0; high < 2; ++high) {
                const int sb = 2 * pair + high;
                __m256i p[NR];
#pragma GCC unroll 8
                for (int c = 0; c < 8; ++c) {
                    const uint8_t* chunk = gb + 96 + 32 * (8 * pair + c);
                    if (!high && c % 2 == 0)
                        _mm_prefetch(reinterpret_cast<const char*>(chunk) + kPrefetchBytes, _MM_HINT_T0);
                    const __m256i packed = load256(chunk);
                    const __m256i q =
                        high ? _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4) : _mm256_and_si256(packed, low4);
#pragma GCC unroll 4
                    for (int j = 0; j < NR; ++j) {
                        // pairs <= 2 * 15 * 127; the 8 chunks' sum <= 30480
                        const __m256i t = _mm256_maddubs_epi16(q, broadcast32(x[j][b].qs + 32 * sb + 4 * c));
                        p[j] = c == 0 ? t : _mm256_add_epi16(p[j], t);
                        if constexpr (NR > 1) in_order(p[j]);
                    }
                }
#pragma GCC unroll 4
                for (int j = 0; j < NR; ++j) sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p[j], scales[sb]));
            }
        }
        const __m256i s1 = load256(gb + 32), s2 = load256(gb + 64);
        const __m256i mn03 = _mm256_and_si256(s1, low6);
        const __m256i mn47 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(s2, 4), low4),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(s1, 6), low2), 4));
        const __m256i mins[4] = {pick_pairs(mn03, 4), pick_pairs(mn03, 5), pick_pairs(mn47, 4), pick_pairs(mn47, 5)};
        const __m256 d = _mm256_cvtph_ps(load128(fields)), dmin = _mm256_cvtph_ps(load128(fields + 16));
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
            // sum over sub-blocks of min * (activation sum of the sub-block), per lane:
            // int16 [y0..y3, y0..y3 | y4..y7, y4..y7], y_s the sum of sub-block s (|.| <= 4064)
            const __m256i sums = _mm256_madd_epi16(load256(x[j][b].bsums), ones);
            const __m256i packed = _mm256_packs_epi32(sums, sums);
            __m256i min_sum = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int t = 0; t < 4; ++t) {
                const int at = t < 2 ? t : t + 2;
                const __m256i pair = _mm256_permutevar8x32_epi32(packed, _mm256_set1_epi32(at));
                min_sum = _mm256_add_epi32(min_sum, _mm256_madd_epi16(mins[t], pair));
            }
            const __m256 dy = _mm256_set1_ps(x[j][b].d);
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(d, dy), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
            acc[j] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, dy), _mm256_cvtepi32_ps(min_sum), acc[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) _mm256_storeu_ps(out[j], acc[j]);
}

// Q6_K block of a group: d[8] among the fields; 16 triples of chunks (see
// quant/repack.h), then 4 of the int8 scales. Run r (0..3) of half h holds elements 128h + 32r + l:
// its low 4 bits are ql[64h + 32(r % 2) + l] >> 4(r / 2), its top 2 bits
// qh[32h + l] >> 2r. In decode the quants go in signed (q - 32, in
// -32..31): |q| into maddubs and q's sign onto the activation, so the 4
// chunks of a 16-element scale group sum in int16 (4 * 2 * 32 * 127 =
// 32512), and one madd by the group's scale (an int16 pair per lane) ends
// them. Several rows take them unsigned (below).
template <int NR>
void tile_q6_K_r8(int64_t nb, const uint8_t* group, const BlockQ8_K* const* x, float* const* out) {
    constexpr size_t kChunks = kGroupRows * (sizeof(BlockQ6_K) - 2);
    // Chunk triple (h, lc) at 96 * (8h + lc): ql of l, ql of l + 32, qh of l
    // (quant/repack.h); the scales after the 16 triples.
    constexpr size_t kScales = 48 * 32;
    auto triple = [](const uint8_t* chunks, int h, int lc) { return chunks + 96 * (8 * h + lc); };
    __m256 acc[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[j] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(0x03), m32 = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* fields = group_block(group, b, kChunks, 16);
        const uint8_t* gb = fields + 16;
        // The lines of the scales and fields here; those of the quants as they are read.
        for (size_t o = kScales; o < kChunks; o += 64)
            _mm_prefetch(reinterpret_cast<const char*>(gb) + o + kPrefetchBytes, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(fields) + kPrefetchBytes, _MM_HINT_T0);
        __m256i sumi[NR];
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) sumi[j] = _mm256_setzero_si256();
        if constexpr (NR == 1) {
            // Decode: each chunk triple unpacked once for its 4 runs, which
            // keep 4 int16 sums (the order of the loads as the block lies).
#pragma GCC unroll 1
            for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 1
                for (int g = 0; g < 2; ++g) {
                    __m256i p[4];
#pragma GCC unroll 4
                    for (int lc = 4 * g; lc < 4 * g + 4; ++lc) {
                        const uint8_t* t = triple(gb, h, lc);
                        // 96 bytes a triple: two lines per two triples, three every fourth
                        _mm_prefetch(reinterpret_cast<const char*>(t) + kPrefetchBytes, _MM_HINT_T0);
                        _mm_prefetch(reinterpret_cast<const char*>(t) + 64 + kPrefetchBytes, _MM_HINT_T0);
                        const __m256i ql0 = load256(t), ql1 = load256(t + 32), qh = load256(t + 64);
#pragma GCC unroll 4
                        for (int r = 0; r < 4; ++r) {
                            const __m256i ql = r % 2 ? ql1 : ql0;
                            const __m256i low = _mm256_and_si256(r < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
                            const __m256i top = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), low2);
                            const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(top, 4)), m32);
                            const __m256i y = _mm256_sign_epi8(broadcast32(x[0][b].qs + 128 * h + 32 * r + 4 * lc), q);
                            const __m256i t = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), y);
                            p[r] = lc == 4 * g ? t : _mm256_add_epi16(p[r], t);
                        }
                    }
                    const __m256i scales_lo = load256(gb + kScales + 32 * (2 * h)),
                                  scales_hi = load256(gb + kScales + 32 * (2 * h + 1));
#pragma GCC unroll 4
                    for (int r = 0; r < 4; ++r) {
                        const int sc = 2 * r + g;
                        const __m256i scale =
                            _mm256_srai_epi16(pick_pairs(sc < 4 ? scales_lo : scales_hi, 6 + sc % 4), 8);
                        sumi[0] = _mm256_add_epi32(sumi[0], _mm256_madd_epi16(p[r], scale));
                    }
                }
            }
        } else {
            // Several rows: the quants go in unsigned (0..63), so no sign
            // moves onto the activations; maddubs pairs are within 2 * 63 *
            // 127, two chunks sum in int16 (32004) and each half of a scale
            // group has its madd. The offset 32 comes off once per block: 32 *
            // (sum over the 16 scale groups of scale * the activation's sum
            // of the group, from bsums). Against the signed quants of decode:
            // "tile speed" 64 rows 31.1 -> 29.6 ns per output, Q4_K_M pp512
            // 1.010x (5 rounds).
#pragma GCC unroll 1
            for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 1
                for (int r = 0; r < 4; ++r) {
                    // The quants' lines as they are first read.
                    if (r == 0)
                        for (int lc = 0; lc < 8; ++lc)
                            for (int o = 0; o < 96; o += 64)
                                _mm_prefetch(reinterpret_cast<const char*>(triple(gb, h, lc)) + o + kPrefetchBytes,
                                             _MM_HINT_T0);
#pragma GCC unroll 2
                    for (int g = 0; g < 2; ++g) {
                        // scale 8h + 2r + g of each row: byte (2r + g) % 4 of scale chunk 2h + (2r + g) / 4
                        const int sc = 2 * r + g;
                        const __m256i scales = load256(gb + kScales + 32 * (2 * h + sc / 4));
                        const __m256i scale = _mm256_srai_epi16(pick_pairs(scales, 6 + sc % 4), 8);
#pragma GCC unroll 2
                        for (int half = 0; half < 2; ++half) {
                            __m256i p[NR];
#pragma GCC unroll 2
                            for (int i = 0; i < 2; ++i) {
                                const int lc = 4 * g + 2 * half + i;
                                const __m256i ql = load256(triple(gb, h, lc) + 32 * (r % 2));
                                const __m256i qh = load256(triple(gb, h, lc) + 64);
                                const __m256i low = _mm256_and_si256(r < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
                                const __m256i top = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), low2);
                                const __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(top, 4));
#pragma GCC unroll 4
                                for (int j = 0; j < NR; ++j) {
                                    const __m256i t =
                                        _mm256_maddubs_epi16(q, broadcast32(x[j][b].qs + 128 * h + 32 * r + 4 * lc));
                                    p[j] = i == 0 ? t : _mm256_add_epi16(p[j], t);
                                    in_order(p[j]);
                                }
                            }
#pragma GCC unroll 4
                            for (int j = 0; j < NR; ++j)
                                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(p[j], scale));
                        }
                    }
                }
            }
            // Scale chunk t holds scales 4t..4t+3 of each row: as the int16 pairs (4t, 4t + 1), (4t + 2, 4t + 3).
            __m256i pairs[8];
#pragma GCC unroll 4
            for (int t = 0; t < 4; ++t) {
                const __m256i chunk = load256(gb + kScales + 32 * t);
                pairs[2 * t] = _mm256_srai_epi16(pick_pairs(chunk, 10), 8);
                pairs[2 * t + 1] = _mm256_srai_epi16(pick_pairs(chunk, 11), 8);
            }
#pragma GCC unroll 4
            for (int j = 0; j < NR; ++j) {
                __m256i offset = _mm256_setzero_si256();
#pragma GCC unroll 8
                for (int t = 0; t < 8; ++t) {
                    int32_t sums;  // the int16 bsums 2t and 2t + 1
                    std::memcpy(&sums, x[j][b].bsums + 2 * t, 4);
                    offset = _mm256_add_epi32(offset, _mm256_madd_epi16(pairs[t], _mm256_set1_epi32(sums)));
                }
                sumi[j] = _mm256_sub_epi32(sumi[j], _mm256_slli_epi32(offset, 5));
            }
        }
        const __m256 d = _mm256_cvtph_ps(load128(fields));
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j)
            acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(x[j][b].d)), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) _mm256_storeu_ps(out[j], acc[j]);
}

// Covers m x n with groups of 8 rows by up to kCols activation rows, column
// tile outer so the kCols activation rows stay in L1 while the groups pass.
// Tile(c) runs c + 1 activation rows of x (already offset to the column tile).
template <class Tile>
void gemm_groups(int64_t m, int64_t n, const char* w, size_t ws, float* const* out_rows, Tile&& tile) {
    for (int64_t j = 0; j < n; j += kCols) {
        const int nr = int(n - j < kCols ? n - j : kCols);
        float* out[kCols];
        for (int64_t i = 0; i < m; i += kGroupRows) {
            for (int c = 0; c < nr; ++c) out[c] = out_rows[j + c] + i;
            tile(nr, j, reinterpret_cast<const uint8_t*>(w + size_t(i) * ws), out);
        }
    }
}

// Q4_0, Q5_0 and Q8_0: Q8_0 activation rows with their extras.
template <void (*... kTile)(int64_t, const uint8_t*, const Q8Rows&, float* const*)>
void gemm_with_extras(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                      float* const* out_rows) {
    using Fn = void (*)(int64_t, const uint8_t*, const Q8Rows&, float* const*);
    static constexpr Fn kTiles[kCols] = {kTile...};
    const int64_t nb = k / kQK8_0;
    const size_t at = extras_offset(k);
    Q8Rows x{};
    int64_t loaded = -1;
    gemm_groups(m, n, static_cast<const char*>(w), ws, out_rows,
                [&](int nr, int64_t j, const uint8_t* g, float* const* out) {
                    if (loaded != j) {
                        for (int c = 0; c < nr; ++c) {
                            const char* row = static_cast<const char*>(x_rows[j + c]);
                            x.q[c] = reinterpret_cast<const BlockQ8_0*>(row);
                            x.d[c] = reinterpret_cast<const float*>(row + at);
                            x.sums[c] = reinterpret_cast<const int32_t*>(row + at) + nb;
                        }
                        loaded = j;
                    }
                    kTiles[nr - 1](nb, g, x, out);
                });
}

void gemm_q4_0_r8(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                  float* const* out_rows) {
    gemm_with_extras<tile_q45_0_r8<false, 1>, tile_q45_0_r8<false, 2>, tile_q45_0_r8<false, 3>,
                     tile_q45_0_r8<false, 4>>(k, m, n, w, ws, x_rows, out_rows);
}

void gemm_q5_0_r8(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                  float* const* out_rows) {
    gemm_with_extras<tile_q45_0_r8<true, 1>, tile_q45_0_r8<true, 2>, tile_q45_0_r8<true, 3>, tile_q45_0_r8<true, 4>>(
        k, m, n, w, ws, x_rows, out_rows);
}

template <class XBlock, void (*... kTile)(int64_t, const uint8_t*, const XBlock* const*, float* const*)>
void gemm_plain_x(int64_t nb, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                  float* const* out_rows) {
    using Fn = void (*)(int64_t, const uint8_t*, const XBlock* const*, float* const*);
    static constexpr Fn kTiles[kCols] = {kTile...};
    gemm_groups(m, n, static_cast<const char*>(w), ws, out_rows,
                [&](int nr, int64_t j, const uint8_t* g, float* const* out) {
                    kTiles[nr - 1](nb, g, reinterpret_cast<const XBlock* const*>(x_rows + j), out);
                });
}

void gemm_q8_0_r8(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                  float* const* out_rows) {
    gemm_with_extras<tile_q8_0_r8<1>, tile_q8_0_r8<2>, tile_q8_0_r8<3>, tile_q8_0_r8<4>>(k, m, n, w, ws, x_rows,
                                                                                         out_rows);
}

void gemm_q4_K_r8(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                  float* const* out_rows) {
    gemm_plain_x<BlockQ8_K, tile_q4_K_r8<1>, tile_q4_K_r8<2>, tile_q4_K_r8<3>, tile_q4_K_r8<4>>(k / kQK_K, m, n, w, ws,
                                                                                                x_rows, out_rows);
}

void gemm_q6_K_r8(int64_t k, int64_t m, int64_t n, const void* w, size_t ws, const void* const* x_rows,
                  float* const* out_rows) {
    gemm_plain_x<BlockQ8_K, tile_q6_K_r8<1>, tile_q6_K_r8<2>, tile_q6_K_r8<3>, tile_q6_K_r8<4>>(k / kQK_K, m, n, w, ws,
                                                                                                x_rows, out_rows);
}

// Repacking's byte shuffle, 4 chunks at a time: rows r and r + 4 share a
// register (r in the low half), and a 4 x 4 transpose of 32-bit words in
// each half leaves chunk j of all 8 rows in register j, in row order.
// A run not a multiple of 4 ends with 4 chunks that overlap the ones before
// (written twice, the same bytes).
void repack_chunks(const uint8_t* const* rows, int n_chunks, uint8_t* group, const uint16_t* chunk_to) {
    for (int next = 0; next < n_chunks;) {
        const int c = next < n_chunks - 4 ? next : n_chunks - 4;
        next = c + 4;
        __m256i a[4];
        for (int r = 0; r < 4; ++r)
            a[r] = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + 4 * c))),
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r + 4] + 4 * c)), 1);
        const __m256i lo01 = _mm256_unpacklo_epi32(a[0], a[1]), hi01 = _mm256_unpackhi_epi32(a[0], a[1]);
        const __m256i lo23 = _mm256_unpacklo_epi32(a[2], a[3]), hi23 = _mm256_unpackhi_epi32(a[2], a[3]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(group + chunk_to[c]), _mm256_unpacklo_epi64(lo01, lo23));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(group + chunk_to[c + 1]), _mm256_unpackhi_epi64(lo01, lo23));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(group + chunk_to[c + 2]), _mm256_unpacklo_epi64(hi01, hi23));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(group + chunk_to[c + 3]), _mm256_unpackhi_epi64(hi01, hi23));
    }
}

}  // namespace

void fill_gemm_repacked_avx2(GemmFn* gemm_repacked, RepackChunksFn* repack_chunks_fn) {
    *repack_chunks_fn = repack_chunks;
    gemm_repacked[uint32_t(DType::Q4_0)] = gemm_q4_0_r8;
    gemm_repacked[uint32_t(DType::Q8_0)] = gemm_q8_0_r8;
    gemm_repacked[uint32_t(DType::Q4_K)] = gemm_q4_K_r8;
    gemm_repacked[uint32_t(DType::Q5_0)] = gemm_q5_0_r8;
    gemm_repacked[uint32_t(DType::Q6_K)] = gemm_q6_K_r8;
}

}  // namespace moelite
