// Test-only: AVX-512 (F, BW, VL, DQ, VNNI) intrinsics in software, so that
// quant/kernels_avx512_body.h can be built for, and run on, a machine with
// AVX2 alone (tests/emulated_avx512.cpp, tests/emulated_avx512vnni.cpp).
//
// SIMDe (Debian's libsimde-dev) supplies most intrinsics under their Intel
// names. The few that its version 0.7.4 lacks or gets wrong are written here
// lane by lane from Intel's definitions, and take the intrinsic's name through
// a macro:
// masked loads read only the selected lanes (the hardware suppresses faults
// on the others), narrowing conversions truncate, reductions add in halves.
//
// Include this before anything else that uses the intrinsics, in a file built
// with the AVX2 flags (simd_avx2.h needs them) and nothing wider. As in the
// library's per-ISA files, everything here has internal linkage (builtins
// rather than <cmath>'s inline functions), so nothing built with those flags
// can stand in for baseline code at link time.
#pragma once

// GCC's AVX-512 headers and SIMDe's leave the ignored merge source of
// unmasked operations undefined; the warnings say nothing about the kernels.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <cstdint>
#include <cstring>

// What quant/kernels_avx512_body.h expects to be included before it.
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/kernels_isa.h"

namespace moelite::emulated {
namespace {

template <typename T, int N>
struct Lanes {
    T v[N];
};

template <typename T, int N, typename V>
inline Lanes<T, N> lanes(V v) {
    static_assert(sizeof(V) == sizeof(T) * N);
    Lanes<T, N> out;
    std::memcpy(out.v, &v, sizeof(V));
    return out;
}

template <typename V, typename T, int N>
inline V vector(const Lanes<T, N>& l) {
    static_assert(sizeof(V) == sizeof(T) * N);
    V out;
    std::memcpy(&out, l.v, sizeof(V));
    return out;
}

inline simde__m256i maskz_loadu_epi16(uint16_t k, const void* p) {
    Lanes<int16_t, 16> r{};
    for (int i = 0; i < 16; ++i)
        if (k >> i & 1) std::memcpy(&r.v[i], static_cast<const char*>(p) + 2 * i, 2);
    return vector<simde__m256i>(r);
}

inline simde__m512 maskz_loadu_ps(uint16_t k, const void* p) {
    Lanes<float, 16> r{};
    for (int i = 0; i < 16; ++i)
        if (k >> i & 1) std::memcpy(&r.v[i], static_cast<const char*>(p) + 4 * i, 4);
    return vector<simde__m512>(r);
}

inline simde__m128i cvtepi32_epi8(simde__m512i a) {
    const auto x = lanes<int32_t, 16>(a);
    Lanes<int8_t, 16> r;
    for (int i = 0; i < 16; ++i) r.v[i] = int8_t(uint8_t(uint32_t(x.v[i]) & 0xff));
    return vector<simde__m128i>(r);
}

inline simde__m512 cvtepi32_ps(simde__m512i a) {
    const auto x = lanes<int32_t, 16>(a);
    Lanes<float, 16> r;
    for (int i = 0; i < 16; ++i) r.v[i] = float(x.v[i]);
    return vector<simde__m512>(r);
}

inline simde__m512i cvtepi8_epi32(simde__m128i a) {
    const auto x = lanes<int8_t, 16>(a);
    Lanes<int32_t, 16> r;
    for (int i = 0; i < 16; ++i) r.v[i] = x.v[i];
    return vector<simde__m512i>(r);
}

inline simde__m512 cvtph_ps(simde__m256i a) {
    const auto x = lanes<uint16_t, 16>(a);
    Lanes<float, 16> r;
    for (int i = 0; i < 16; ++i) r.v[i] = _cvtsh_ss(x.v[i]);  // F16C: part of the AVX2 flags
    return vector<simde__m512>(r);
}

// Truncation; NaN and values out of int32's range give INT32_MIN.
inline simde__m512i cvttps_epi32(simde__m512 a) {
    const auto x = lanes<float, 16>(a);
    Lanes<int32_t, 16> r;
    for (int i = 0; i < 16; ++i)
        r.v[i] = (x.v[i] >= -2147483648.0f && x.v[i] < 2147483648.0f) ? int32_t(x.v[i]) : INT32_MIN;
    return vector<simde__m512i>(r);
}

// VRNDSCALEPS: imm[7:4] fraction bits kept (M), imm[3] suppresses the
// precision exception, imm[2] takes the rounding mode from MXCSR (the current
// one), imm[1:0] the mode: nearest even, down, up, toward zero.
inline simde__m512 roundscale_ps(simde__m512 a, int imm) {
    const auto x = lanes<float, 16>(a);
    const float scale = __builtin_ldexpf(1.0f, imm >> 4);
    Lanes<float, 16> r;
    for (int i = 0; i < 16; ++i) {
        const float v = x.v[i] * scale;
        float q;
        if (imm & 4) {
            q = __builtin_nearbyintf(v);
        } else {
            switch (imm & 3) {
                case 0:
                    q = v - __builtin_remainderf(v, 1.0f);
                    break;  // ties to even
                case 1:
                    q = __builtin_floorf(v);
                    break;
                case 2:
                    q = __builtin_ceilf(v);
                    break;
                default:
                    q = __builtin_truncf(v);
                    break;
            }
        }
        r.v[i] = __builtin_isfinite(v) ? q / scale : x.v[i];
    }
    return vector<simde__m512>(r);
}

template <typename T, typename Op>
inline T reduce_halves(Lanes<T, 16> x, Op op) {
    for (int half = 8; half >= 1; half /= 2)
        for (int i = 0; i < half; ++i) x.v[i] = op(x.v[i], x.v[i + half]);
    return x.v[0];
}

inline int32_t reduce_add_epi32(simde__m512i a) {
    // wraps like the hardware's adds
    return int32_t(reduce_halves(lanes<uint32_t, 16>(a), [](uint32_t p, uint32_t q) { return p + q; }));
}

inline float reduce_add_ps(simde__m512 a) {
    return reduce_halves(lanes<float, 16>(a), [](float p, float q) { return p + q; });
}

// VMAXPS: the second operand where either is NaN or both are zero.
inline float reduce_max_ps(simde__m512 a) {
    return reduce_halves(lanes<float, 16>(a), [](float p, float q) { return p > q ? p : q; });
}

}  // namespace
}  // namespace moelite::emulated

// SIMDe 0.7.4 reads VRNDSCALEPS's exception bit as part of the scale.
#undef _mm512_roundscale_ps
#define _mm512_roundscale_ps(a, imm) ::moelite::emulated::roundscale_ps(a, imm)
// SIMDe 0.7.4's alias of this one takes four arguments by mistake.
#undef _mm512_madd_epi16
#define _mm512_madd_epi16(a, b) simde_mm512_madd_epi16(a, b)
#define _mm256_maskz_loadu_epi16(k, p) ::moelite::emulated::maskz_loadu_epi16(k, p)
#define _mm512_maskz_loadu_ps(k, p) ::moelite::emulated::maskz_loadu_ps(k, p)
#define _mm512_cvtepi32_epi8(a) ::moelite::emulated::cvtepi32_epi8(a)
#define _mm512_cvtepi32_ps(a) ::moelite::emulated::cvtepi32_ps(a)
#define _mm512_cvtepi8_epi32(a) ::moelite::emulated::cvtepi8_epi32(a)
#define _mm512_cvtph_ps(a) ::moelite::emulated::cvtph_ps(a)
#define _mm512_cvttps_epi32(a) ::moelite::emulated::cvttps_epi32(a)
#define _mm512_reduce_add_epi32(a) ::moelite::emulated::reduce_add_epi32(a)
#define _mm512_reduce_add_ps(a) ::moelite::emulated::reduce_add_ps(a)
#define _mm512_reduce_max_ps(a) ::moelite::emulated::reduce_max_ps(a)
