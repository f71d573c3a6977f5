// quant/: the scalar reference of every block format (QuantTraits), against
// llama.cpp's ggml (known answers in tests/data/ggml_vectors.h) and against
// itself: round-trip error bounds per type, awkward rows, dot products against
// double-precision sums, the non-finite rule of quant/quant.h, and the packed
// scale layouts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/ref.h"
#include "tests/data/ggml_vectors.h"
#include "tests/test_util.h"

using namespace moelite;

namespace {

// ---- the known-answer inputs: integer hashing and exact float arithmetic
// only, so every IEEE machine computes the same floats (no libm, no RNG).

float kat_uniform(uint32_t i, uint32_t seed) {
    uint32_t h = i * 2654435761u + seed * 0x9e3779b9u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    h *= 3266489917u;
    h ^= h >> 16;
    return float(int(h % 2001u)) / 2000.0f;  // [0, 1]
}

float kat_bell(uint32_t i, uint32_t seed) {
    const float s = kat_uniform(3 * i, seed) + kat_uniform(3 * i + 1, seed) + kat_uniform(3 * i + 2, seed);
    return (s - 1.5f) * 2.0f;
}

// A: bell-shaped values with an outlier every 97 elements.
std::vector<float> kat_input_a(int n) {
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = kat_bell(uint32_t(i), 1) * (i % 97 == 13 ? 6.0f : 1.0f);
    return x;
}

// B: one awkward block of 32 each, then A's values.
constexpr int kDenormalBlock = 3;
std::vector<float> kat_input_b(int n) {
    std::vector<float> x = kat_input_a(n);
    for (int i = 0; i < n && i < 256; ++i) {
        const int j = i % 32;
        switch (i / 32) {
            case 0:
                x[i] = 0.0f;
                break;
            case 1:
                x[i] = 0.75f;
                break;
            case 2:
                x[i] = -2.5f;
                break;
            case kDenormalBlock:
                x[i] = float(j % 5 - 2) * 1e-39f;
                break;  // f32 denormals
            case 4:
                x[i] = (j % 2 ? 1.0f : -1.0f) * (60000.0f - 100.0f * float(j % 8));
                break;  // near f16 max
            case 5:
                x[i] = j == 7 ? 1000.0f : kat_bell(uint32_t(i), 2);
                break;  // one huge outlier
            case 6:
                x[i] = float(j % 3 - 1) * 0.5f;
                break;  // mixed signs
            case 7:
                x[i] = kat_bell(uint32_t(i), 3) * 1e-6f;
                break;  // below f16 scale resolution
        }
    }
    return x;
}

std::vector<float> kat_activations(int n) {
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = kat_bell(uint32_t(i), 7);
    return x;
}

uint64_t fnv1a(const void* data, size_t bytes) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < bytes; ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

std::vector<uint8_t> from_hex(const char* hex) {
    std::vector<uint8_t> out;
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) out.push_back(uint8_t(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
    return out;
}

// ---- helpers over the traits table

const QuantTraits& traits(DType t) {
    const QuantTraits* q = quant_traits(t);
    REQUIRE(q != nullptr);
    return *q;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> out(dtype_row_bytes(t, int64_t(x.size())), 0xcd);  // junk: from_float must write every byte
    traits(t).from_float(x.data(), out.data(), int64_t(x.size()));
    return out;
}

std::vector<float> dequantize(DType t, const std::vector<uint8_t>& bytes, int64_t n) {
    REQUIRE(bytes.size() == dtype_row_bytes(t, n));
    std::vector<float> y(static_cast<size_t>(n));
    traits(t).to_float(bytes.data(), y.data(), n);
    return y;
}

double rel_rmse(const std::vector<float>& x, const std::vector<float>& y, size_t begin = 0, size_t end = SIZE_MAX) {
    end = std::min(end, x.size());
    double e = 0, s = 0;
    for (size_t i = begin; i < end; ++i) {
        e += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
        s += double(x[i]) * x[i];
    }
    return s > 0 ? std::sqrt(e / s) : std::sqrt(e);
}

DType type_named(const char* name) {
    auto t = dtype_from_name(name);
    REQUIRE(t.has_value());
    return *t;
}

// Every type with a from_float, and the round-trip error bound on N(0, 1)
// rows (relative RMSE), about 10-15% above what the reference measures; a
// layout or rounding bug costs far more than that.
struct TypeBound {
    DType type;
    double rel_rmse;
};
constexpr TypeBound kBounds[] = {
    {DType::F32, 0.0},    {DType::F16, 2.5e-4}, {DType::BF16, 2.0e-3}, {DType::Q4_0, 0.095}, {DType::Q4_1, 0.085},
    {DType::Q5_0, 0.047}, {DType::Q5_1, 0.042}, {DType::Q8_0, 0.006},  {DType::Q8_1, 0.006}, {DType::Q2_K, 0.28},
    {DType::Q3_K, 0.155}, {DType::Q4_K, 0.076}, {DType::Q5_K, 0.038},  {DType::Q6_K, 0.019}, {DType::Q8_K, 0.0075},
};

bool is_block32(DType t) {
    return dtype_block_size(t) == 32;
}

}  // namespace

TEST_CASE("quant traits: every computed type is complete, with ggml's vec_dot pairing but for BF16's") {
    // BF16 weights take F32 activations (ggml: BF16), see quant/quant.cpp.
    const std::pair<DType, DType> pairs[] = {
        {DType::F32, DType::F32},   {DType::F16, DType::F16},   {DType::BF16, DType::F32},  {DType::Q4_0, DType::Q8_0},
        {DType::Q4_1, DType::Q8_1}, {DType::Q5_0, DType::Q8_0}, {DType::Q5_1, DType::Q8_1}, {DType::Q8_0, DType::Q8_0},
        {DType::Q8_1, DType::Q8_1}, {DType::Q2_K, DType::Q8_K}, {DType::Q3_K, DType::Q8_K}, {DType::Q4_K, DType::Q8_K},
        {DType::Q5_K, DType::Q8_K}, {DType::Q6_K, DType::Q8_K}, {DType::Q8_K, DType::Q8_K},
    };
    for (auto [type, dot_type] : pairs) {
        const std::string name = dtype_name(type);
        CAPTURE(name);
        const QuantTraits* q = quant_traits(type);
        REQUIRE(q != nullptr);
        CHECK(q->type == type);
        CHECK(bool(q->to_float));
        CHECK(bool(q->from_float));
        CHECK(bool(q->vec_dot));
        CHECK(q->vec_dot_type == dot_type);
        CHECK(bool(quant_traits(q->vec_dot_type)->from_float));
    }
    CHECK(quant_traits(DType::IQ2_XXS) == nullptr);
    CHECK(quant_traits(DType::I32) == nullptr);
    CHECK(quant_traits(DType(1000)) == nullptr);
}

TEST_CASE("quant vs ggml: to_float of ggml's bytes reproduces ggml's floats bit for bit") {
    int checked = 0;
    for (const auto& v : test::kGgmlVectors) {
        if (v.checksum == 0) continue;  // q8_1: ggml has no to_float
        CAPTURE(v.type);
        CAPTURE(v.input);
        const DType t = type_named(v.type);
        const auto bytes = from_hex(v.bytes);
        const auto y = dequantize(t, bytes, 512);
        CHECK(fnv1a(y.data(), y.size() * sizeof(float)) == v.checksum);
        ++checked;
    }
    CHECK(checked == 26);
}

TEST_CASE("quant vs ggml: from_float gives ggml's bytes where ggml's reference is deterministic") {
    // F16, BF16, the 32-element formats and Q8_K. Exception: the block of f32
    // denormals in input B, where ggml's inverse scale overflows to infinity and
    // its float-to-int conversion of inf/NaN is undefined (it happens to store
    // zeros); ours quantizes that block as zero. Both dequantize it to zeros.
    const char* deterministic[] = {"f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "q8_K"};
    int checked = 0;
    for (const auto& v : test::kGgmlVectors) {
        const DType t = type_named(v.type);
        if (std::find_if(std::begin(deterministic), std::end(deterministic),
                         [&](const char* n) { return std::string(n) == v.type; }) == std::end(deterministic))
            continue;
        CAPTURE(v.type);
        CAPTURE(v.input);
        const auto x = v.input == 0 ? kat_input_a(512) : kat_input_b(512);
        const auto expected = from_hex(v.bytes);
        auto ours = quantize(t, x);
        REQUIRE(ours.size() == expected.size());
        if (v.input == 1 && is_block32(t)) {
            const size_t bb = dtype_block_bytes(t), at = kDenormalBlock * bb;
            const auto y = dequantize(t, ours, 512);
            for (int i = 32 * kDenormalBlock; i < 32 * kDenormalBlock + 32; ++i) CHECK(y[i] == 0.0f);
            std::memcpy(ours.data() + at, expected.data() + at, bb);
        }
        CHECK(ours == expected);
        ++checked;
    }
    CHECK(checked == 18);
}

TEST_CASE("quant vs ggml: K-quant error is no worse than ggml's reference on the same rows") {
    int checked = 0;
    for (const auto& v : test::kGgmlVectors) {
        const DType t = type_named(v.type);
        if (dtype_block_size(t) != kQK_K || t == DType::Q8_K) continue;
        CAPTURE(v.type);
        CAPTURE(v.input);
        const auto x = v.input == 0 ? kat_input_a(512) : kat_input_b(512);
        const double ours = rel_rmse(x, dequantize(t, quantize(t, x), 512));
        MESSAGE(v.type << " input " << v.input << ": rel rmse ours " << ours << " ggml " << v.rel_rmse);
        CHECK(ours <= v.rel_rmse * (1.0 + 1e-6));
        ++checked;
    }
    CHECK(checked == 10);
}

TEST_CASE("quant vs ggml: vec_dot on ggml's blocks matches ggml's vec_dot") {
    const auto act = kat_activations(512);
    int checked = 0;
    for (const auto& v : test::kGgmlVectors) {
        if (!v.act_bytes) continue;
        CAPTURE(v.type);
        CAPTURE(v.input);
        const DType t = type_named(v.type);
        const QuantTraits& q = traits(t);
        const auto w = from_hex(v.bytes);
        const auto a = from_hex(v.act_bytes);
        // ggml's CPU activation quantization agrees with our reference on this
        // row. ggml rounds BF16's activations to BF16 where we keep F32: given
        // ggml's rounded activations widened to F32 (exact), the dots agree.
        const DType ggml_act = t == DType::BF16 ? DType::BF16 : q.vec_dot_type;
        CHECK(quantize(ggml_act, act) == a);
        const auto af = dequantize(ggml_act, a, 512);
        std::vector<uint8_t> ours = a;
        if (ggml_act != q.vec_dot_type) {
            REQUIRE(q.vec_dot_type == DType::F32);
            ours.resize(af.size() * sizeof(float));
            std::memcpy(ours.data(), af.data(), ours.size());
        }
        float s = 0.0f;
        q.vec_dot(512, &s, w.data(), ours.data());
        // tolerance: float accumulation in a different order, relative to sum |w_i a_i|
        const auto wf = dequantize(t, w, 512);
        double mag = 0;
        for (int i = 0; i < 512; ++i) mag += std::fabs(double(wf[i]) * af[i]);
        CHECK(std::fabs(double(s) - double(v.dot)) <= 2e-6 * mag);
        ++checked;
    }
    CHECK(checked == 24);  // all but q8_1 and q8_K, which ggml gives no vec_dot
}

TEST_CASE("quant round trip: N(0,1) rows stay within each type's error bound") {
    const int n = 4096;
    for (int seed = 1; seed <= 3; ++seed) {
        const auto x = test::random_floats(n, uint32_t(seed));
        for (const auto& b : kBounds) {
            const std::string name = dtype_name(b.type);
            CAPTURE(name);
            CAPTURE(seed);
            const auto y = dequantize(b.type, quantize(b.type, x), n);
            const double e = rel_rmse(x, y);
            CHECK(e <= b.rel_rmse);
            if (b.type != DType::F32) CHECK(e > 0.0);
            // scale invariance away from the f16 limits: x * 2^k quantizes to y * 2^k
            // exactly for the formats whose scales are plain products (not the searched
            // K-quants; not F16 either, whose subnormals start at 6e-5)
            if (is_block32(b.type) || b.type == DType::Q8_K || b.type == DType::BF16) {
                std::vector<float> x8(x);
                for (auto& v : x8) v *= 8.0f;
                const auto y8 = dequantize(b.type, quantize(b.type, x8), n);
                bool same = true;
                for (int i = 0; i < n; ++i) same &= y8[i] == y[i] * 8.0f;
                CHECK(same);
            }
        }
    }
}

TEST_CASE("quant round trip: awkward rows") {
    const int n = 512;
    for (const auto& b : kBounds) {
        const DType t = b.type;
        const std::string name = dtype_name(t);
        CAPTURE(name);
        const int bs = int(dtype_block_size(t));
        const double bound = std::max(b.rel_rmse, 1e-6);

        {  // all zeros read back as zeros
            INFO("all zeros read back as zeros");
            const auto y = dequantize(t, quantize(t, std::vector<float>(n, 0.0f)), n);
            for (float v : y) REQUIRE(v == 0.0f);
        }
        {  // a row of one negative value is kept to f16 precision
            INFO("a row of one negative value is kept to f16 precision");
            const std::vector<float> x(n, -1.5f);
            CHECK(rel_rmse(x, dequantize(t, quantize(t, x), n)) <= 1e-3);
        }
        {  // constant blocks of different values
            INFO("constant blocks of different values");
            std::vector<float> x(n);
            for (int i = 0; i < n; ++i) x[i] = float(((i / 32) % 2) ? -1 : 1) * 0.1f * float(1 + (i / 32) % 7);
            const double e = rel_rmse(x, dequantize(t, quantize(t, x), n));
            CHECK(e <= (is_block32(t) ? 1e-3 : bs == 1 ? std::max(1e-3, bound) : bound));
        }
        {  // one huge outlier in a block is itself kept, the rest within bound
            INFO("one huge outlier in a block is itself kept, the rest within bound");
            auto x = test::random_floats(n, 11);
            x[37] = 1000.0f;
            const auto y = dequantize(t, quantize(t, x), n);
            const double outlier_tol = (t == DType::Q2_K || t == DType::Q3_K) ? 0.05 : 0.01;
            CHECK(std::fabs(y[37] - 1000.0f) <= outlier_tol * 1000.0f);
            // the blocks without the outlier are unaffected by it
            const size_t other = size_t(bs == 1 ? 64 : std::max(bs, 64));
            CHECK(rel_rmse(x, y, other) <= bound * 1.2);
        }
        {  // values near the f16 maximum stay finite
            INFO("values near the f16 maximum stay finite");
            std::vector<float> x(n);
            for (int i = 0; i < n; ++i) x[i] = ((i % 2) ? 1.0f : -1.0f) * (65000.0f - 37.0f * float(i % 11));
            const auto y = dequantize(t, quantize(t, x), n);
            for (float v : y) REQUIRE(std::isfinite(v));
            CHECK(rel_rmse(x, y) <= bound);
        }
        {  // f32 denormals quantize to (near) zero without NaN or overflow
            INFO("f32 denormals quantize to (near) zero without NaN or overflow");
            std::vector<float> x(n);
            for (int i = 0; i < n; ++i) x[i] = float(i % 9 - 4) * 1e-40f;
            const auto y = dequantize(t, quantize(t, x), n);
            for (int i = 0; i < n; ++i) {
                REQUIRE(std::isfinite(y[i]));
                REQUIRE(std::fabs(y[i]) <= 1e-38f);
                if (t == DType::F32) CHECK(y[i] == x[i]);
                if (t == DType::BF16) CHECK((y[i] == 0.0f) == (x[i] == 0.0f));  // bf16 keeps f32's exponent range
            }
        }
        {  // mixed signs and magnitudes
            INFO("mixed signs and magnitudes");
            std::vector<float> x(n);
            for (int i = 0; i < n; ++i) x[i] = ((i * 7) % 3 == 0 ? -1.0f : 1.0f) * float(1 + i % 5) * 0.25f;
            CHECK(rel_rmse(x, dequantize(t, quantize(t, x), n)) <= bound);
        }
        {  // a small block next to a large one
            INFO("a small block next to a large one");
            auto x = test::random_floats(n, 12);
            for (int i = 0; i < n / 2; ++i) x[i] *= 1e-3f;
            const auto y = dequantize(t, quantize(t, x), n);
            // K-quants share one f16 scale per 256: the quiet half is resolved only
            // coarsely, but must not blow up
            CHECK(rel_rmse(x, y, n / 2) <= bound);
            CHECK(rel_rmse(x, y, 0, n / 2) <= (bs == 256 ? 1.0 : bound));
        }
    }
}

TEST_CASE("quant vec_dot: equals the double-precision dot of the dequantized operands") {
    // Exercises each layout's integer dot product: vec_dot(w, a) against
    // sum to_float(w)_i * to_float(a)_i, summed in double.
    const int n = 1024;
    const auto wx = test::random_floats(n, 21);
    const auto ax = test::random_floats(n, 22);
    for (const auto& b : kBounds) {
        const DType t = b.type;
        const std::string name = dtype_name(t);
        CAPTURE(name);
        const QuantTraits& q = traits(t);
        const auto w = quantize(t, wx);
        const auto a = quantize(q.vec_dot_type, ax);
        const auto wf = dequantize(t, w, n), af = dequantize(q.vec_dot_type, a, n);
        double exact = 0, mag = 0;
        for (int i = 0; i < n; ++i) {
            exact += double(wf[i]) * af[i];
            mag += std::fabs(double(wf[i]) * af[i]);
        }
        float s = 0;
        q.vec_dot(n, &s, w.data(), a.data());
        // Q4_1 / Q5_1 use the Q8_1 block sum s, stored as f16 (rounded to 2^-11 relative)
        const double tol = (t == DType::Q4_1 || t == DType::Q5_1) ? 2e-4 : 2e-6;
        CHECK(std::fabs(s - exact) <= tol * mag);
    }
}

TEST_CASE("quant vec_dot: close to the f32 dot product of the dequantized weights with the activations") {
    // The error left is the activation quantization's, bounded per activation
    // type relative to |w| |a|.
    const int n = 4096;
    for (int seed = 1; seed <= 3; ++seed) {
        const auto wx = test::random_floats(n, uint32_t(100 + seed));
        const auto ax = test::random_floats(n, uint32_t(200 + seed), 3.0f);
        for (const auto& b : kBounds) {
            const DType t = b.type;
            const std::string name = dtype_name(t);
            CAPTURE(name);
            const QuantTraits& q = traits(t);
            const auto w = quantize(t, wx);
            const auto wf = dequantize(t, w, n);
            double exact = 0, ww = 0, aa = 0;
            for (int i = 0; i < n; ++i) {
                exact += double(wf[i]) * ax[i];
                ww += double(wf[i]) * wf[i];
                aa += double(ax[i]) * ax[i];
            }
            const auto a = quantize(q.vec_dot_type, ax);
            float s = 0;
            q.vec_dot(n, &s, w.data(), a.data());
            double tol = 0;
            switch (q.vec_dot_type) {
                case DType::F32:
                    tol = 1e-7;
                    break;
                case DType::F16:
                    tol = 1e-4;
                    break;
                case DType::BF16:
                    tol = 1e-3;
                    break;
                default:
                    tol = 1e-3;
                    break;  // Q8_0, Q8_1, Q8_K
            }
            CHECK(std::fabs(s - exact) <= tol * std::sqrt(ww * aa));
        }
    }
}

TEST_CASE("quant Q8_K: bsums hold the sums of each 16 quants, and Q8_1's s is d times the sum") {
    auto x = test::random_floats(1024, 31);
    for (int i = 256; i < 512; ++i) x[i] = 0.0f;  // a zero super-block has zero sums too
    const auto bytes = quantize(DType::Q8_K, x);
    const auto* b = reinterpret_cast<const BlockQ8_K*>(bytes.data());
    for (int i = 0; i < 4; ++i) {
        for (int g = 0; g < kQK_K / 16; ++g) {
            int sum = 0;
            for (int j = 0; j < 16; ++j) sum += b[i].qs[16 * g + j];
            CHECK(b[i].bsums[g] == sum);
        }
    }
    CHECK(b[1].d == 0.0f);

    const auto b1 = quantize(DType::Q8_1, x);
    const auto* q1 = reinterpret_cast<const BlockQ8_1*>(b1.data());
    for (int i = 0; i < 32; ++i) {
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += q1[i].qs[j];
        const float d = fp16_to_fp32(q1[i].d), s = fp16_to_fp32(q1[i].s);
        CHECK(std::fabs(s - d * float(sum)) <= 1e-3f * std::fabs(d * float(sum)) + 1e-7f);
    }
}

TEST_CASE("quant non-finite input: the block holding it reads back as NaN, the others are untouched") {
    const int n = 1024;
    const float inf = std::numeric_limits<float>::infinity();
    for (const auto& b : kBounds) {
        const DType t = b.type;
        const std::string name = dtype_name(t);
        CAPTURE(name);
        const QuantTraits& q = traits(t);
        auto x = test::random_floats(n, 41);
        const auto clean = dequantize(t, quantize(t, x), n);
        x[40] = std::nanf("");
        x[600] = -inf;
        x[700] = inf;
        const auto bytes = quantize(t, x);
        const auto y = dequantize(t, bytes, n);
        if (!dtype_is_quantized(t)) {
            // plain floats convert element by element
            CHECK(std::isnan(y[40]));
            CHECK(y[600] == -inf);
            CHECK(y[700] == inf);
            for (int i : {0, 39, 41, 599, 601, 1023}) CHECK(y[i] == clean[i]);
        } else {
            const int bs = int(dtype_block_size(t));
            auto poisoned = [&](int i) { return i / bs == 40 / bs || i / bs == 600 / bs || i / bs == 700 / bs; };
            bool ok = true;
            for (int i = 0; i < n; ++i) {
                if (poisoned(i))
                    ok &= std::isnan(y[i]);
                else
                    ok &= std::memcmp(&y[i], &clean[i], 4) == 0;
            }
            CHECK(ok);
        }
        // a dot product with such a row is NaN, either way round
        const auto a_clean = quantize(q.vec_dot_type, test::random_floats(n, 42));
        float s = 0;
        q.vec_dot(n, &s, bytes.data(), a_clean.data());
        CHECK(std::isnan(s));
        auto ax = test::random_floats(n, 42);
        ax[5] = std::nanf("");
        const auto a_nan = quantize(q.vec_dot_type, ax);
        q.vec_dot(n, &s, quantize(t, test::random_floats(n, 43)).data(), a_nan.data());
        CHECK(std::isnan(s));
    }
    // F16: finite values past its range become infinities (as ggml); bf16 keeps them
    const std::vector<float> big = {70000.0f, -1e30f};
    const auto h = dequantize(DType::F16, quantize(DType::F16, big), 2);
    CHECK(h[0] == inf);
    CHECK(h[1] == -inf);
    const auto bf = dequantize(DType::BF16, quantize(DType::BF16, big), 2);
    CHECK(std::isfinite(bf[0]));
    CHECK(std::isfinite(bf[1]));
}

TEST_CASE("quant layouts: packed K-quant scales round-trip every value") {
    // Q4_K / Q5_K: 6-bit scales and mins, 8 of each in 12 bytes
    for (int v = 0; v < 64; ++v) {
        int sc[8], mn[8];
        for (int j = 0; j < 8; ++j) {
            sc[j] = (v + 9 * j) % 64;
            mn[j] = (63 - v + 5 * j) % 64;
        }
        uint8_t packed[12];
        ref::k4_pack_scales_mins(sc, mn, packed);
        for (int j = 0; j < 8; ++j) {
            int s, m;
            ref::k4_get_scale_min(packed, j, &s, &m);
            REQUIRE(s == sc[j]);
            REQUIRE(m == mn[j]);
        }
    }
    // Q3_K: 16 signed 6-bit scales in 12 bytes
    for (int v = 0; v < 64; ++v) {
        int sc[16];
        for (int j = 0; j < 16; ++j) sc[j] = (v + 7 * j) % 64 - 32;
        uint8_t packed[12];
        ref::q3k_pack_scales(sc, packed);
        for (int j = 0; j < 16; ++j) REQUIRE(ref::q3k_get_scale(packed, j) == sc[j]);
    }
}

TEST_CASE("quant layouts: hand-built blocks decode element by element as the format says") {
    // Q6_K: element e, half h = e / 128, r = e % 128, k = r / 32, l = r % 32:
    // low nibble in ql[64h + 32(k%2) + l] (high nibble for k >= 2), top bits in
    // qh[32h + l] at 2k; value d * scales[e / 16] * (q - 32).
    BlockQ6_K b6{};
    b6.d = fp32_to_fp16(0.5f);
    for (int s = 0; s < 16; ++s) b6.scales[s] = int8_t(s - 8);
    const int e = 128 + 64 + 5;  // h = 1, k = 2, l = 5: high nibble of ql[64 + 5], qh[32 + 5] bits 4-5
    b6.ql[64 + 5] = 0x70;        // low 4 bits of q = 7
    b6.qh[32 + 5] = 0x20;        // top 2 bits of q = 2 -> q = 39
    std::vector<float> y(256);
    traits(DType::Q6_K).to_float(&b6, y.data(), 256);
    CHECK(y[e] == 0.5f * float(e / 16 - 8) * float(39 - 32));
    CHECK(y[e - 64] == 0.5f * float((e - 64) / 16 - 8) * -32.0f);  // k = 0 of the same l: q = 0

    // Q4_K: element e in qs[32 (e / 64) + e % 32], high nibble for odd e / 32;
    // value d * sc - dmin * m with the 6-bit pair of sub-block e / 32.
    BlockQ4_K b4{};
    b4.d = fp32_to_fp16(0.25f);
    b4.dmin = fp32_to_fp16(0.125f);
    int sc[8] = {1, 2, 3, 4, 40, 50, 60, 63}, mn[8] = {0, 1, 2, 3, 33, 44, 55, 62};
    ref::k4_pack_scales_mins(sc, mn, b4.scales);
    b4.qs[32 * 3 + 9] = 0xa5;  // e = 32*6 + 9 (low nibble 5) and 32*7 + 9 (high nibble 10)
    traits(DType::Q4_K).to_float(&b4, y.data(), 256);
    CHECK(y[32 * 6 + 9] == 0.25f * 60.0f * 5.0f - 0.125f * 55.0f);
    CHECK(y[32 * 7 + 9] == 0.25f * 63.0f * 10.0f - 0.125f * 62.0f);

    // Q5_0: bit 4 of element j in bit j of qh (little-endian 32 bits)
    BlockQ5_0 b5{};
    b5.d = fp32_to_fp16(1.0f);
    b5.qs[3] = 0x21;  // element 3: low 1, element 19: low 2
    b5.qh[2] = 0x08;  // bit 19
    traits(DType::Q5_0).to_float(&b5, y.data(), 32);
    CHECK(y[3] == 1.0f - 16.0f);
    CHECK(y[19] == 2.0f + 16.0f - 16.0f);
}

TEST_CASE("quant rounding of exact ties follows ggml's reference, format by format") {
    // A block whose extreme makes the scale exactly 1, and elements on .5 ties.
    const float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f};
    std::vector<float> y(256);

    // Q8_0 / Q8_1 round half away from zero (roundf): extreme 127 -> d = 1
    for (DType t : {DType::Q8_0, DType::Q8_1}) {
        std::vector<float> x(32, 0.0f);
        x[31] = 127.0f;
        for (int i = 0; i < 6; ++i) x[i] = ties[i];
        traits(t).to_float(quantize(t, x).data(), y.data(), 32);
        const float expected[] = {1, 2, 3, -1, -2, -3};
        for (int i = 0; i < 6; ++i) CHECK(y[i] == expected[i]);
    }
    // Q8_K rounds half to even: extreme 127 -> iscale -1
    {
        std::vector<float> x(256, 0.0f);
        x[255] = 127.0f;
        for (int i = 0; i < 6; ++i) x[i] = ties[i];
        traits(DType::Q8_K).to_float(quantize(DType::Q8_K, x).data(), y.data(), 256);
        const float expected[] = {0, 2, 2, 0, -2, -2};
        for (int i = 0; i < 6; ++i) CHECK(y[i] == expected[i]);
    }
    // Q4_0 adds 8.5 and truncates: half up. Extreme -8 -> d = 1.
    {
        std::vector<float> x(32, 0.0f);
        x[31] = -8.0f;
        for (int i = 0; i < 6; ++i) x[i] = ties[i];
        traits(DType::Q4_0).to_float(quantize(DType::Q4_0, x).data(), y.data(), 32);
        const float expected[] = {1, 2, 3, 0, -1, -2};
        for (int i = 0; i < 6; ++i) CHECK(y[i] == expected[i]);
    }
    // Q4_1: (x - min) / d + 0.5, truncated: half up from the minimum. min -8, max 7 -> d = 1.
    {
        std::vector<float> x(32, 0.0f);
        x[30] = -8.0f;
        x[31] = 7.0f;
        for (int i = 0; i < 6; ++i) x[i] = ties[i];
        traits(DType::Q4_1).to_float(quantize(DType::Q4_1, x).data(), y.data(), 32);
        const float expected[] = {1, 2, 3, 0, -1, -2};
        for (int i = 0; i < 6; ++i) CHECK(y[i] == expected[i]);
    }
}
