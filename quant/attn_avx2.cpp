// AVX2 kernels of blocked attention (quant/quant.h: AttnScoresFn,
// AttnAccumulateFn, ExpSubFn, and Transpose32Fn, which the AMX path's weight
// panels use too), used by flash_attn over blocks of queries and keys
// (backends/cpu/ops_softmax_attn.cpp). Float arithmetic in another order than
// the scalar references, and an exp within a few ulp of std::exp; the
// transposition copies bits.
//
// The rules of kernels_avx2.cpp apply: AVX2 flags by file name, plain headers,
// everything internal but the registration function.
#include <immintrin.h>
#include <math.h>

#include <cstddef>
#include <cstdint>

#include "quant/kernels_isa.h"
#include "quant/simd_avx2.h"

namespace moelite {
namespace {

// Scores of NR rows with 16 (or 8) keys: for each d, one load of the keys'
// column and a broadcast of each row's q[d].
template <int NR>
void scores_tile16(int64_t d, const float* q, size_t q_stride, const float* kt, size_t kt_stride, float* s,
                   size_t s_stride) {
    __m256 acc[NR][2];
    for (int r = 0; r < NR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < d; ++i) {
        const __m256 k0 = _mm256_loadu_ps(kt + size_t(i) * kt_stride),
                     k1 = _mm256_loadu_ps(kt + size_t(i) * kt_stride + 8);
        for (int r = 0; r < NR; ++r) {
            const __m256 qb = _mm256_broadcast_ss(q + size_t(r) * q_stride + i);
            acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
        }
    }
    for (int r = 0; r < NR; ++r) {
        _mm256_storeu_ps(s + size_t(r) * s_stride, acc[r][0]);
        _mm256_storeu_ps(s + size_t(r) * s_stride + 8, acc[r][1]);
    }
}

template <int NR>
void scores_tile8(int64_t d, const float* q, size_t q_stride, const float* kt, size_t kt_stride, float* s,
                  size_t s_stride) {
    __m256 acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < d; ++i) {
        const __m256 k0 = _mm256_loadu_ps(kt + size_t(i) * kt_stride);
        for (int r = 0; r < NR; ++r)
            acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + size_t(r) * q_stride + i), k0, acc[r]);
    }
    for (int r = 0; r < NR; ++r) _mm256_storeu_ps(s + size_t(r) * s_stride, acc[r]);
}

template <int NR>
void scores_rows(int64_t keys, int64_t d, const float* q, size_t q_stride, const float* kt, size_t kt_stride, float* s,
                 size_t s_stride) {
    int64_t j = 0;
    for (; j + 16 <= keys; j += 16) scores_tile16<NR>(d, q, q_stride, kt + j, kt_stride, s + j, s_stride);
    for (; j + 8 <= keys; j += 8) scores_tile8<NR>(d, q, q_stride, kt + j, kt_stride, s + j, s_stride);
    for (; j < keys; ++j) {
        for (int r = 0; r < NR; ++r) {
            float sum = 0.0f;
            for (int64_t i = 0; i < d; ++i) sum += q[size_t(r) * q_stride + i] * kt[size_t(i) * kt_stride + j];
            s[size_t(r) * s_stride + j] = sum;
        }
    }
}

// Calls tile.template operator()<NR>(r) for row blocks of 4 from r = 0, then
// one block of the remaining 1-3 rows.
template <typename Tile>
void by_row_blocks(int64_t rows, Tile tile) {
    int64_t r = 0;
    for (; r + 4 <= rows; r += 4) tile.template operator()<4>(r);
    switch (rows - r) {
        case 3: tile.template operator()<3>(r); break;
        case 2: tile.template operator()<2>(r); break;
        case 1: tile.template operator()<1>(r); break;
        default: break;
    }
}

void attn_scores(int64_t rows, int64_t keys, int64_t d, const float* q, size_t q_stride, const float* kt,
                 size_t kt_stride, float* s, size_t s_stride) {
    by_row_blocks(rows, [&]<int NR>(int64_t r) {
        scores_rows<NR>(keys, d, q + size_t(r) * q_stride, q_stride, kt, kt_stride, s + size_t(r) * s_stride, s_stride);
    });
}

// acc rows += p rows times v, NR rows by 16 (or 8) columns at a time.
template <int NR, int NV>
void accumulate_tile(int64_t keys, const float* p, size_t p_stride, const float* v, size_t v_stride, float* acc,
                     size_t acc_stride) {
    __m256 a[NR][NV];
    for (int r = 0; r < NR; ++r)
        for (int c = 0; c < NV; ++c) a[r][c] = _mm256_loadu_ps(acc + size_t(r) * acc_stride + 8 * c);
    for (int64_t j = 0; j < keys; ++j) {
        __m256 vv[NV];
        for (int c = 0; c < NV; ++c) vv[c] = _mm256_loadu_ps(v + size_t(j) * v_stride + 8 * c);
        for (int r = 0; r < NR; ++r) {
            const __m256 pb = _mm256_broadcast_ss(p + size_t(r) * p_stride + j);
            for (int c = 0; c < NV; ++c) a[r][c] = _mm256_fmadd_ps(pb, vv[c], a[r][c]);
        }
    }
    for (int r = 0; r < NR; ++r)
        for (int c = 0; c < NV; ++c) _mm256_storeu_ps(acc + size_t(r) * acc_stride + 8 * c, a[r][c]);
}

template <int NR>
void accumulate_rows(int64_t keys, int64_t dv, const float* p, size_t p_stride, const float* v, size_t v_stride,
                     float* acc, size_t acc_stride) {
    int64_t c = 0;
    for (; c + 16 <= dv; c += 16) accumulate_tile<NR, 2>(keys, p, p_stride, v + c, v_stride, acc + c, acc_stride);
    for (; c + 8 <= dv; c += 8) accumulate_tile<NR, 1>(keys, p, p_stride, v + c, v_stride, acc + c, acc_stride);
    for (; c < dv; ++c) {
        for (int r = 0; r < NR; ++r) {
            float sum = acc[size_t(r) * acc_stride + c];
            for (int64_t j = 0; j < keys; ++j) sum += p[size_t(r) * p_stride + j] * v[size_t(j) * v_stride + c];
            acc[size_t(r) * acc_stride + c] = sum;
        }
    }
}

void attn_accumulate(int64_t rows, int64_t keys, int64_t dv, const float* p, size_t p_stride, const float* v,
                     size_t v_stride, float* acc, size_t acc_stride) {
    by_row_blocks(rows, [&]<int NR>(int64_t r) {
        accumulate_rows<NR>(keys, dv, p + size_t(r) * p_stride, p_stride, v, v_stride, acc + size_t(r) * acc_stride,
                            acc_stride);
    });
}

// Groups of 8 rows by 8 columns transposed in registers (unpack pairs, then
// quads, then swap the 128-bit halves); a ragged last group of rows, or of
// columns, goes element by element.
void transpose32(int64_t d, int64_t n, const void* src, size_t row_stride, void* out, size_t dst_stride) {
    const auto* rows = static_cast<const float*>(src);  // moved as floats: no arithmetic, every bit kept
    auto* dst = static_cast<float*>(out);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float* r = rows + size_t(j) * row_stride;
        int64_t i = 0;
        for (; i + 8 <= d; i += 8) {
            __m256 v[8];
            for (int q = 0; q < 8; ++q) v[q] = _mm256_loadu_ps(r + size_t(q) * row_stride + i);
            __m256 t[8], s[8];
            for (int q = 0; q < 8; q += 2) {
                t[q] = _mm256_unpacklo_ps(v[q], v[q + 1]);
                t[q + 1] = _mm256_unpackhi_ps(v[q], v[q + 1]);
            }
            for (int q = 0; q < 8; q += 4) {
                s[q] = _mm256_shuffle_ps(t[q], t[q + 2], 0x44);
                s[q + 1] = _mm256_shuffle_ps(t[q], t[q + 2], 0xee);
                s[q + 2] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0x44);
                s[q + 3] = _mm256_shuffle_ps(t[q + 1], t[q + 3], 0xee);
            }
            float* o = dst + size_t(i) * dst_stride + j;
            for (int q = 0; q < 4; ++q) {
                _mm256_storeu_ps(o + size_t(q) * dst_stride, _mm256_permute2f128_ps(s[q], s[q + 4], 0x20));
                _mm256_storeu_ps(o + size_t(q + 4) * dst_stride, _mm256_permute2f128_ps(s[q], s[q + 4], 0x31));
            }
        }
        for (; i < d; ++i)
            for (int64_t jj = j; jj < j + 8; ++jj) dst[size_t(i) * dst_stride + jj] = rows[size_t(jj) * row_stride + i];
    }
    for (; j < n; ++j)
        for (int64_t i = 0; i < d; ++i) dst[size_t(i) * dst_stride + j] = rows[size_t(j) * row_stride + i];
}

float exp_sub(int64_t n, float* x, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = hsum_ps(sum);
    for (; i < n; ++i) {
        x[i] = expf(x[i] - m);
        total += x[i];
    }
    return total;
}

}  // namespace

void fill_attn_avx2(AttnScoresFn* scores, Transpose32Fn* transpose, AttnAccumulateFn* accumulate,
                    ExpSubFn* exp_sub_fn) {
    *scores = attn_scores;
    *transpose = transpose32;
    *accumulate = attn_accumulate;
    *exp_sub_fn = exp_sub;
}

}  // namespace moelite
