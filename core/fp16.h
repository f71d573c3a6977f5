// Scalar conversions between f32 and the 16/8-bit float formats that appear in
// checkpoints and GGUF files: IEEE binary16 (f16), bfloat16 (bf16) and FP8
// E4M3 "fn" (no infinities, one NaN pattern per sign), as DeepSeek-V3 ships.
//
// The functions are `static inline` on purpose: per-ISA translation units
// include this header with wider instruction-set flags, and internal linkage
// keeps their copies from being merged into baseline code by the linker.
// Rounding is to nearest, ties to even, like the hardware converters.
#pragma once

#include <cstdint>
#include <cstring>

namespace moelite {

static inline uint32_t fp_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

static inline float fp_from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

static inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return fp_from_bits(sign | 0x7f800000u | (mant << 13));  // inf / nan
    if (exp == 0) {
        if (mant == 0) return fp_from_bits(sign);
        // subnormal: value = mant * 2^-24
        float v = float(mant) * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return fp_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

static inline uint16_t fp32_to_fp16(float f) {
    const uint32_t u = fp_bits(f);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // nan, keep it quiet
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to or past 65520: inf
    if (abs < 0x38800000u) {
        // below the smallest normal f16 (2^-14): subnormal or zero.
        // Adding 0.5 in magnitude makes the FPU round the mantissa for us (RNE).
        float v = fp_from_bits(abs) + 0.5f;
        return uint16_t(sign | (fp_bits(v) - 0x3f000000u));
    }
    const uint32_t mant_odd = (abs >> 13) & 1u;
    uint32_t r = abs + 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
    return uint16_t(sign | (r >> 13));
}

static inline float bf16_to_fp32(uint16_t h) { return fp_from_bits(uint32_t(h) << 16); }

static inline uint16_t fp32_to_bf16(float f) {
    const uint32_t u = fp_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 64u);  // nan: force quiet
    return uint16_t((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

// FP8 E4M3FN: 1 sign, 4 exponent (bias 7), 3 mantissa bits; 0x7f/0xff are NaN,
// there is no infinity; the largest finite value is 448.
static inline float fp8_e4m3_to_fp32(uint8_t v) {
    const uint32_t sign = uint32_t(v & 0x80u) << 24;
    const uint32_t exp = (v >> 3) & 0xfu;
    const uint32_t mant = v & 0x7u;
    if (exp == 0xf && mant == 0x7) return fp_from_bits(sign | 0x7fc00000u);
    if (exp == 0) {
        float r = float(mant) * (1.0f / 512.0f);  // subnormal: mant * 2^-9
        return sign ? -r : r;
    }
    return fp_from_bits(sign | ((exp + 120) << 23) | (mant << 20));
}

}  // namespace moelite
