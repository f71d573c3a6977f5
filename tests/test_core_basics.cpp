// core/ basics: the dtype size table, f16/bf16/fp8 conversions, tensor views, host memory.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/host_memory.h"
#include "core/tensor.h"

using namespace moelite;

TEST_CASE("dtype table: ids, names and sizes agree") {
    for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
        auto t = dtype_from_id(id);
        if (!t) continue;
        CHECK(uint32_t(*t) == id);
        CHECK(dtype_from_name(dtype_name(*t)) == t);
    }
    CHECK_FALSE(dtype_from_id(4).has_value());
    CHECK_FALSE(dtype_from_id(1000).has_value());
    CHECK(dtype_from_name("Q4_K") == DType::Q4_K);
    CHECK_FALSE(dtype_from_name("q4_x").has_value());
    CHECK(dtype_row_bytes(DType::Q4_K, 4096) == 16 * 144);
    CHECK(dtype_row_bytes(DType::F16, 7) == 14);
}

TEST_CASE("f16 conversion is exact on representable values and rounds to nearest even") {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float f = fp16_to_fp32(uint16_t(h));
        if (std::isnan(f)) {
            CHECK(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
            continue;
        }
        REQUIRE(fp32_to_fp16(f) == uint16_t(h));
    }
    // halfway between 1 and the next f16 (1 + 2^-10): ties to even -> 1
    CHECK(fp32_to_fp16(1.0f + 0.00048828125f) == 0x3c00);
    CHECK(fp32_to_fp16(65520.0f) == 0x7c00);
    CHECK(fp32_to_fp16(65519.0f) == 0x7bff);
    CHECK(fp32_to_fp16(1e-8f) == 0x0000);
    CHECK(fp32_to_fp16(-std::numeric_limits<float>::infinity()) == 0xfc00);
}

TEST_CASE("bf16 and fp8 e4m3 conversions") {
    CHECK(bf16_to_fp32(fp32_to_bf16(1.0f)) == 1.0f);
    CHECK(fp32_to_bf16(1.00390625f) == 0x3f80);  // tie, even stays
    CHECK(fp32_to_bf16(1.01171875f) == 0x3f82);  // tie, odd rounds up
    CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(std::nanf("")))));
    CHECK(fp8_e4m3_to_fp32(0x7e) == 448.0f);
    CHECK(fp8_e4m3_to_fp32(0x38) == 1.0f);
    CHECK(fp8_e4m3_to_fp32(0x01) == std::ldexp(1.0f, -9));
    CHECK(fp8_e4m3_to_fp32(0xb8) == -1.0f);
    CHECK(std::isnan(fp8_e4m3_to_fp32(0x7f)));
    CHECK(std::isnan(fp8_e4m3_to_fp32(0xff)));
}

TEST_CASE("tensor shapes, strides and byte counts") {
    Tensor t;
    int64_t ne[] = {256, 3, 2};
    tensor_set_shape(t, DType::Q4_K, ne, 3);
    CHECK(t.nb[0] == 144);
    CHECK(t.nb[1] == 144);
    CHECK(t.nb[2] == 432);
    CHECK(t.nbytes() == 864);
    CHECK(t.is_contiguous());
    CHECK(tensor_shape_string(t) == "[256, 3, 2]");
    std::swap(t.ne[1], t.ne[2]);
    std::swap(t.nb[1], t.nb[2]);
    CHECK_FALSE(t.is_contiguous());
    CHECK(t.nbytes() == 864);
}

TEST_CASE("errors carry their message") {
    try {
        fail("file %s: bad magic", "x.gguf");
        FAIL("fail() returned");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == "file x.gguf: bad magic");
    }
}

TEST_CASE("host memory: aligned, writable to the last byte, huge-page aligned from 2 MiB") {
    for (size_t bytes : {size_t(1), size_t(1000), kHugePageBytes - 1, kHugePageBytes, 3 * kHugePageBytes + 5}) {
        for (size_t alignment : {size_t(64), size_t(4096)}) {
            INFO(bytes << " bytes, aligned to " << alignment);
            HostMemory m = allocate_host_memory(bytes, alignment, "test");
            REQUIRE(m != nullptr);
            const uintptr_t at = reinterpret_cast<uintptr_t>(m.get());
            CHECK(at % alignment == 0);
            if (bytes >= kHugePageBytes) CHECK(at % kHugePageBytes == 0);
            auto* p = static_cast<unsigned char*>(m.get());
            for (size_t i = 0; i < bytes; i += 4093) p[i] = static_cast<unsigned char>(i);
            p[bytes - 1] = 0xa5;
            CHECK(p[bytes - 1] == 0xa5);
            if (bytes > 1) CHECK(p[0] == 0);
        }
    }
    // Memory the kernel cannot give is an Error naming what it was for.
    CHECK_THROWS_WITH_AS(allocate_host_memory(size_t(1) << 62, 64, "the probe"), doctest::Contains("the probe"), Error);
}
