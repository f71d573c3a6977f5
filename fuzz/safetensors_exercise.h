// What the safetensors fuzz target does with one input, shared with the
// regression test that replays saved crashes (tests/test_safetensors.cpp):
// parse it from memory, then touch every byte of every tensor, convert a few
// elements of each float tensor, look each one up by name, and dequantize a
// row of any FP8 weight that has a "_scale_inv" sibling. A moelite::Error is
// a clean rejection; anything else (a crash, a sanitizer report, an assert)
// is a finding.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"

namespace moelite::fuzz {

// Returns true when the input parsed as a valid file.
inline bool exercise_safetensors(const uint8_t* data, size_t size) {
    try {
        SafetensorsFile file("fuzz-input.safetensors", data, size);
        volatile uint8_t sink = 0;
        for (const SafetensorsTensor& t : file.tensors()) {
            MOELITE_ASSERT(file.find(t.name) == &t);
            MOELITE_ASSERT(t.data >= data && t.nbytes() <= size_t(data + size - t.data));
            uint8_t x = 0;
            for (uint8_t b : t.bytes()) x ^= b;
            sink = sink ^ x;
            if (safetensors_dtype_is_float(t.dtype)) {
                float buf[8];
                const int64_t n = std::min<int64_t>(t.n_elements, 8);
                t.read_f32(0, n, buf);
                t.read_f32(t.n_elements - n, n, buf);
            } else {
                try {
                    float one;
                    t.read_f32(0, 0, &one);
                    MOELITE_ASSERT_MSG(false, "read_f32 accepted a non-float dtype");
                } catch (const Error&) {
                }
            }
            if (t.dtype == SafetensorsDType::F8_E4M3) {
                const SafetensorsTensor* scale = file.find(t.name + "_scale_inv");
                if (!scale) continue;
                try {
                    fp8_check_block_scales(t, *scale, 128, 128);
                    const int64_t rows = std::min<int64_t>(t.shape[0], 1);
                    std::vector<float> out(size_t(rows * t.shape[1]));
                    fp8_dequantize_rows(t, *scale, 0, rows, out.data());
                } catch (const Error&) {
                }
            }
        }
        for (const auto& [key, value] : file.metadata()) sink = sink ^ uint8_t(key.size() + value.size());
        return true;
    } catch (const Error&) {
        return false;
    }
}

}  // namespace moelite::fuzz
