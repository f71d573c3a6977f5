// Per-ISA kernels (quant/kernels.h) against the scalar references of
// quant/quant.h, for every ISA this machine supports (the others are skipped
// with a message), and the run-time dispatch around them. The kernels of the
// ISAs above this machine's also run on emulated instructions
// (tests/emulated.h) in the tests of what those ISAs implement: dot
// products, quantizers and the bf16 tile product.
//
// Dot products must equal the reference up to the order of float sums:
// |simd - ref| <= 1e-5 * sum |x_i * y_i| (the dequantized magnitudes), far
// below what one wrong element changes on the rows used. Quantizers must
// write the reference's bytes exactly: both round the same way (roundf for
// Q8_0/Q8_1, to nearest even for Q8_K, f16 and bf16), so a difference, ties
// included, is a bug; the test also checks that every output dequantizes to
// within half a step of its input. Measured here: 0 differing bytes on every
// input, the tie-only rows included.
//
// The dispatch: MOELITE_ISA parsing (isa_parse_cap, called directly rather
// than through setenv), isa_supported() against cpu_features() and
// /proc/cpuinfo, the SIMD entries being the ones selected, and the build
// itself: per-ISA objects export nothing the linker could merge, and no other
// object of the library holds an AVX instruction.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "core/log.h"
#include "quant/blocks.h"
#include "quant/kernels.h"
#include "quant/repack.h"
#include "tests/emulated.h"
#include "tests/test_util.h"

using namespace moelite;

namespace {

const QuantTraits& traits_of(DType type) {
    const QuantTraits* t = quant_traits(type);
    MOELITE_ASSERT(t != nullptr);
    return *t;
}

// Every type with a reference dot product.
std::vector<DType> dot_types() {
    std::vector<DType> out;
    for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
        const auto type = dtype_from_id(id);
        if (type && quant_traits(*type) && quant_traits(*type)->vec_dot) out.push_back(*type);
    }
    return out;
}

bool is_activation_type(DType t) {
    return t == DType::Q8_0 || t == DType::Q8_1 || t == DType::Q8_K;
}

std::vector<uint8_t> quantize_ref(DType type, const std::vector<float>& x) {
    std::vector<uint8_t> out(dtype_row_bytes(type, int64_t(x.size())));
    traits_of(type).from_float(x.data(), out.data(), int64_t(x.size()));
    return out;
}

std::vector<float> dequantize(DType type, const std::vector<uint8_t>& bytes, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    traits_of(type).to_float(bytes.data(), out.data(), n);
    return out;
}

uint16_t random_f16_scale(std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    return fp32_to_fp16(dist(rng));
}

// Makes raw random (or patterned) block bytes valid: scale fields finite and
// moderate, activation quants within -127..127 with consistent sums. Quant
// bits and packed sub-block scales are left as they are, so every pattern
// the format allows is exercised.
void sanitize_blocks(DType type, uint8_t* data, int64_t n, bool activation, std::mt19937& rng) {
    const int64_t nb = n / dtype_block_size(type);
    auto clamp_q8 = [](int8_t* q, int count) {
        for (int j = 0; j < count; ++j) q[j] = q[j] == -128 ? int8_t(-127) : q[j];
    };
    for (int64_t i = 0; i < nb; ++i) {
        uint8_t* block = data + size_t(i) * dtype_block_bytes(type);
        switch (type) {
            case DType::Q4_0: reinterpret_cast<BlockQ4_0*>(block)->d = random_f16_scale(rng, -0.1f, 0.1f); break;
            case DType::Q5_0: reinterpret_cast<BlockQ5_0*>(block)->d = random_f16_scale(rng, -0.1f, 0.1f); break;
            case DType::Q4_1: {
                auto* b = reinterpret_cast<BlockQ4_1*>(block);
                b->d = random_f16_scale(rng, 0.0f, 0.1f);
                b->m = random_f16_scale(rng, -1.0f, 1.0f);
                break;
            }
            case DType::Q5_1: {
                auto* b = reinterpret_cast<BlockQ5_1*>(block);
                b->d = random_f16_scale(rng, 0.0f, 0.1f);
                b->m = random_f16_scale(rng, -1.0f, 1.0f);
                break;
            }
            case DType::Q8_0: {
                auto* b = reinterpret_cast<BlockQ8_0*>(block);
                b->d = random_f16_scale(rng, -0.01f, 0.01f);
                if (activation) clamp_q8(b->qs, kQK8_0);  // weights may hold -128, activations never do
                break;
            }
            case DType::Q2_K: {
                auto* b = reinterpret_cast<BlockQ2_K*>(block);
                b->d = random_f16_scale(rng, 0.0f, 0.01f);
                b->dmin = random_f16_scale(rng, 0.0f, 0.01f);
                break;
            }
            case DType::Q3_K: reinterpret_cast<BlockQ3_K*>(block)->d = random_f16_scale(rng, -0.01f, 0.01f); break;
            case DType::Q4_K: {
                auto* b = reinterpret_cast<BlockQ4_K*>(block);
                b->d = random_f16_scale(rng, 0.0f, 0.01f);
                b->dmin = random_f16_scale(rng, 0.0f, 0.01f);
                break;
            }
            case DType::Q5_K: {
                auto* b = reinterpret_cast<BlockQ5_K*>(block);
                b->d = random_f16_scale(rng, 0.0f, 0.01f);
                b->dmin = random_f16_scale(rng, 0.0f, 0.01f);
                break;
            }
            case DType::Q6_K: reinterpret_cast<BlockQ6_K*>(block)->d = random_f16_scale(rng, -0.001f, 0.001f); break;
            case DType::Q8_1: {
                auto* b = reinterpret_cast<BlockQ8_1*>(block);
                clamp_q8(b->qs, kQK8_1);
                const float d = fp16_to_fp32(random_f16_scale(rng, 0.0f, 0.02f));
                int sum = 0;
                for (int8_t q : b->qs) sum += q;
                b->d = fp32_to_fp16(d);
                b->s = fp32_to_fp16(d * float(sum));
                break;
            }
            case DType::Q8_K: {
                auto* b = reinterpret_cast<BlockQ8_K*>(block);
                clamp_q8(b->qs, kQK_K);
                std::uniform_real_distribution<float> dist(-0.02f, 0.02f);
                b->d = dist(rng);
                for (int g = 0; g < kQK_K / 16; ++g) {
                    int sum = 0;
                    for (int j = 0; j < 16; ++j) sum += b->qs[16 * g + j];
                    b->bsums[g] = int16_t(sum);
                }
                break;
            }
            default: break;
        }
    }
}

// Row bytes of `type` for one of the data kinds below.
enum class Data { Random, Outliers, Zeros, RawBits, AllOnes, AllZeroBits, AllHighBit };
const char* data_name(Data d) {
    switch (d) {
        case Data::Random: return "random";
        case Data::Outliers: return "outliers";
        case Data::Zeros: return "zeros";
        case Data::RawBits: return "raw bits";
        case Data::AllOnes: return "bits 0xff";
        case Data::AllZeroBits: return "bits 0x00";
        case Data::AllHighBit: return "bits 0x80";
    }
    return "?";
}

std::vector<uint8_t> make_row(DType type, int64_t n, Data kind, bool activation, uint32_t seed) {
    std::mt19937 rng(seed);
    const bool is_float = !dtype_is_quantized(type);
    if (kind == Data::Random || kind == Data::Outliers || kind == Data::Zeros || is_float) {
        std::vector<float> x = test::random_floats(size_t(n), seed, activation ? 1.0f : 0.05f);
        if (kind == Data::Zeros) x.assign(size_t(n), 0.0f);
        if (kind == Data::Outliers || (is_float && kind != Data::Random && kind != Data::Zeros)) {
            std::uniform_int_distribution<int64_t> pick(0, n - 1);
            for (int k = 0; k < 1 + int(n / 64); ++k) x[size_t(pick(rng))] = (k % 2 ? -1.0f : 1.0f) * 3.0e3f;
        }
        return quantize_ref(type, x);
    }
    std::vector<uint8_t> bytes(dtype_row_bytes(type, n));
    uint8_t fill = kind == Data::AllOnes ? 0xff : kind == Data::AllZeroBits ? 0x00 : 0x80;
    if (kind == Data::RawBits) {
        std::uniform_int_distribution<int> byte(0, 255);
        for (auto& b : bytes) b = uint8_t(byte(rng));
    } else {
        // activations at the largest magnitude: all +127 or all -127
        if (activation) fill = kind == Data::AllOnes ? 0x7f : 0x81;
        std::memset(bytes.data(), fill, bytes.size());
    }
    sanitize_blocks(type, bytes.data(), n, activation, rng);
    return bytes;
}

// The row with every term of its formula made positive: for the formats with
// an offset (x = d * q + m, or d * sc * q - dmin * m) the sizes of the terms,
// not of their difference, bound the float rounding of any evaluation order.
std::vector<uint8_t> magnitude_twin(DType type, std::vector<uint8_t> bytes) {
    const size_t bb = dtype_block_bytes(type);
    for (size_t off = 0; off + bb <= bytes.size(); off += bb) {
        uint8_t* block = bytes.data() + off;
        auto positive = [](fp16_bits& h) { h = fp16_bits(h & 0x7fff); };
        auto negative = [](fp16_bits& h) { h = fp16_bits(h | 0x8000); };
        switch (type) {
            case DType::Q4_1: positive(reinterpret_cast<BlockQ4_1*>(block)->d), positive(reinterpret_cast<BlockQ4_1*>(block)->m); break;
            case DType::Q5_1: positive(reinterpret_cast<BlockQ5_1*>(block)->d), positive(reinterpret_cast<BlockQ5_1*>(block)->m); break;
            case DType::Q2_K: positive(reinterpret_cast<BlockQ2_K*>(block)->d), negative(reinterpret_cast<BlockQ2_K*>(block)->dmin); break;
            case DType::Q4_K: positive(reinterpret_cast<BlockQ4_K*>(block)->d), negative(reinterpret_cast<BlockQ4_K*>(block)->dmin); break;
            case DType::Q5_K: positive(reinterpret_cast<BlockQ5_K*>(block)->d), negative(reinterpret_cast<BlockQ5_K*>(block)->dmin); break;
            default: break;
        }
    }
    return bytes;
}

// sum |x_i| * |y_i| over the dequantized rows (x's terms made positive): the
// scale of the rounding error of a dot product.
double abs_dot(DType xt, const std::vector<uint8_t>& x, DType yt, const std::vector<uint8_t>& y, int64_t n) {
    const std::vector<float> a = dequantize(xt, magnitude_twin(xt, x), n), b = dequantize(yt, y, n);
    double sum = 0.0;
    for (size_t i = 0; i < a.size(); ++i) sum += std::fabs(double(a[i]) * double(b[i]));
    return sum;
}

std::vector<int64_t> row_lengths(DType type) {
    if (!dtype_is_quantized(type)) return {1, 2, 7, 8, 9, 31, 32, 33, 100, 257, 4099};
    const int64_t bs = dtype_block_size(type);
    std::vector<int64_t> out;
    for (int64_t blocks : {1, 2, 3, 5, 7, 16, 17}) out.push_back(blocks * bs);
    return out;
}

std::string unsupported_isas() {
    std::string s;
    for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Amx}) {
        if (int(isa) > int(isa_machine_best())) s += std::string(s.empty() ? "" : ", ") + isa_name(isa);
    }
    return s;
}

void note_skipped_isas() {
    const std::string skipped = unsupported_isas();
    if (!skipped.empty()) MESSAGE("SKIPPED on this CPU (not supported): " << skipped);
}

// The tables a test runs: those of the ISAs this machine supports, then the
// emulated ones above them (tests/emulated.h), for the tests of kernels that
// the ISAs above AVX2 implement.
struct TableUnderTest {
    std::string label;
    const KernelTable* table;
};

std::vector<TableUnderTest> tables_under_test() {
    std::vector<TableUnderTest> out;
    for (Isa isa : isa_supported()) out.push_back({isa_name(isa), &kernel_table(isa)});
    for (const test::EmulatedTable& e : test::emulated_tables()) out.push_back({e.label, &e.table});
    const std::string gaps = test::emulation_gaps();
    if (!gaps.empty()) MESSAGE("SKIPPED: " << gaps);
    return out;
}

}  // namespace

TEST_CASE("kernels: every ISA's vec_dot equals the scalar reference") {
    const Data kinds[] = {Data::Random,  Data::Outliers,    Data::Zeros,     Data::RawBits,
                          Data::AllOnes, Data::AllZeroBits, Data::AllHighBit};
    for (const TableUnderTest& under : tables_under_test()) {
        const KernelTable& table = *under.table;
        double worst = 0.0;
        int compared = 0;
        for (DType wt : dot_types()) {
            const QuantTraits& tr = traits_of(wt);
            const VecDotFn fn = table.vec_dot[uint32_t(wt)];
            REQUIRE((fn != nullptr));
            for (int64_t n : row_lengths(wt)) {
                for (Data kind : kinds) {
                    const uint32_t seed = uint32_t(n * 131 + int(kind) * 7 + uint32_t(wt));
                    const auto x = make_row(wt, n, kind, is_activation_type(wt), seed);
                    const auto y = make_row(tr.vec_dot_type, n, kind == Data::AllZeroBits ? Data::AllOnes : kind,
                                            true, seed + 1);
                    float want = 0.0f, got = 0.0f;
                    tr.vec_dot(n, &want, x.data(), y.data());
                    fn(n, &got, x.data(), y.data());
                    const double scale = abs_dot(wt, x, tr.vec_dot_type, y, n);
                    const double err = std::fabs(double(got) - double(want));
                    INFO(under.label << " " << std::string(dtype_name(wt)) << " n=" << n << " data=" << std::string(data_name(kind))
                                       << " ref=" << want << " got=" << got << " scale=" << scale);
                    REQUIRE(std::isfinite(got));
                    CHECK(err <= 1e-5 * scale + 1e-30);
                    if (scale > 0) worst = std::max(worst, err / scale);
                    ++compared;
                }
            }
        }
        MESSAGE(under.label << ": " << compared << " dot products, worst |simd - ref| / sum|x*y| = " << worst);
    }
}

// Tile kernels (quant/gemm.h) through gemm_tiles, for every type and every
// ISA: each output against the reference vec_dot of its row pair, on tile
// shapes that are full, ragged in m, ragged in n or both (the AVX2 tiles are
// 1 x 1, 4 x 2 and 1 x 4), with padded weight rows (a stride past the row)
// and outputs that must not touch their neighbours.
TEST_CASE("kernels: every ISA's tile kernel equals the scalar reference") {
    note_skipped_isas();
    struct Shape {
        int64_t m, n;
    };
    const Shape shapes[] = {{1, 1}, {4, 1}, {5, 1}, {9, 1}, {3, 2}, {4, 2}, {8, 4},
                            {7, 3}, {9, 5}, {2, 8}, {13, 7}, {1, 9}};
    const float sentinel = -12345.0f;
    for (Isa isa : isa_supported()) {
        const KernelTable& table = kernel_table(isa);
        int compared = 0;
        for (DType wt : dot_types()) {
            const QuantTraits& tr = traits_of(wt);
            const int64_t bs = std::max(dtype_block_size(wt), dtype_block_size(tr.vec_dot_type));
            for (int64_t blocks : {1, 3, 17}) {
                const int64_t k = blocks * bs;
                for (Shape s : shapes) {
                    // Padded rows, kept aligned to the element of the float types (as
                    // tensor rows are); block types are byte-packed and start anywhere.
                    const size_t row_bytes = dtype_row_bytes(wt, k), w_stride = row_bytes + 8;
                    std::vector<uint8_t> w(w_stride * size_t(s.m));
                    std::vector<std::vector<uint8_t>> w_rows, x_rows;
                    for (int64_t i = 0; i < s.m; ++i) {
                        const Data kind = i % 5 == 4 ? Data::RawBits : Data::Random;
                        w_rows.push_back(make_row(wt, k, kind, is_activation_type(wt), uint32_t(97 * i + k)));
                        std::memcpy(w.data() + size_t(i) * w_stride, w_rows.back().data(), row_bytes);
                    }
                    std::vector<const void*> x_ptrs;
                    std::vector<std::vector<float>> out(size_t(s.n), std::vector<float>(size_t(s.m + 2), sentinel));
                    std::vector<float*> out_ptrs;
                    for (int64_t j = 0; j < s.n; ++j) {
                        x_rows.push_back(make_row(tr.vec_dot_type, k, Data::Random, true, uint32_t(1000 + 31 * j + k)));
                        out_ptrs.push_back(out[size_t(j)].data() + 1);
                    }
                    for (const auto& x : x_rows) x_ptrs.push_back(x.data());
                    gemm_tiles(table, wt, k, s.m, s.n, w.data(), w_stride, x_ptrs.data(), out_ptrs.data());
                    for (int64_t j = 0; j < s.n; ++j) {
                        CHECK(out[size_t(j)].front() == sentinel);
                        CHECK(out[size_t(j)].back() == sentinel);
                        for (int64_t i = 0; i < s.m; ++i) {
                            float want = 0.0f;
                            tr.vec_dot(k, &want, w_rows[size_t(i)].data(), x_rows[size_t(j)].data());
                            const float got = out[size_t(j)][size_t(i + 1)];
                            const double scale = abs_dot(wt, w_rows[size_t(i)], tr.vec_dot_type, x_rows[size_t(j)], k);
                            INFO(std::string(isa_name(isa)) << " " << std::string(dtype_name(wt)) << " k=" << k
                                                            << " tile " << s.m << "x" << s.n << " at " << i << "," << j
                                                            << " ref=" << want << " got=" << got);
                            REQUIRE(std::isfinite(got));
                            CHECK(std::fabs(double(got) - double(want)) <= 1e-5 * scale + 1e-30);
                            ++compared;
                        }
                    }
                }
            }
        }
        MESSAGE(std::string(isa_name(isa)) << ": " << compared << " tile outputs compared");
    }
}

// Repacked weights (quant/repack.h): the layout round-trips, and every ISA's
// kernel over it (the scalar table's is the reference's) agrees with the
// plain reference vec_dot within the tile tolerance, the activation extras
// (Q4_0's block sums, which only the SIMD kernels read) included.
TEST_CASE("kernels: repacked weights round-trip and every ISA's repacked tiles equal the reference") {
    note_skipped_isas();
    const float sentinel = -12345.0f;
    int types = 0;
    for (DType wt : dot_types()) {
        if (!repack_supported(wt, dtype_block_size(wt), kRepackRows)) continue;
        ++types;
        CHECK(!repack_supported(wt, dtype_block_size(wt), kRepackRows + 1));
        const QuantTraits& tr = traits_of(wt);
        for (int64_t blocks : {1, 3, 17}) {
            const int64_t k = blocks * dtype_block_size(wt);
            for (int64_t m : {8, 24}) {
                const size_t row_bytes = dtype_row_bytes(wt, k), src_stride = row_bytes + 8;
                std::vector<uint8_t> plain(row_bytes * size_t(m)), strided(src_stride * size_t(m));
                for (int64_t i = 0; i < m; ++i) {
                    // Largest quants (bits 0xff, 0x80) among them: the int16 sums' bounds.
                    const Data kind = i % 5 == 4   ? Data::RawBits
                                      : i % 7 == 6 ? Data::Outliers
                                      : i % 6 == 1 ? Data::AllOnes
                                      : i % 6 == 3 ? Data::AllHighBit
                                                   : Data::Random;
                    const auto row = make_row(wt, k, kind, false, uint32_t(131 * i + k));
                    std::memcpy(plain.data() + size_t(i) * row_bytes, row.data(), row_bytes);
                    std::memcpy(strided.data() + size_t(i) * src_stride, row.data(), row_bytes);
                }
                std::vector<uint8_t> packed(plain.size()), back(plain.size());
                repack_rows(wt, k, m, strided.data(), src_stride, packed.data(), repack_chunks_ref);
                CHECK(packed != plain);
                unpack_rows(wt, k, m, packed.data(), back.data());
                REQUIRE(back == plain);
                for (Isa isa : isa_supported()) {
                    // Every ISA's byte shuffle writes the same bytes, and all of them.
                    std::vector<uint8_t> by_isa(plain.size(), 0xa5);
                    repack_rows(wt, k, m, strided.data(), src_stride, by_isa.data(), kernel_table(isa).repack_chunks);
                    INFO(std::string(isa_name(isa)) << " " << std::string(dtype_name(wt)) << " k=" << k);
                    CHECK(by_isa == packed);
                }
                for (int64_t n : {1, 2, 3, 4, 5, 9}) {
                    // Converted rows at aligned addresses, as the CPU backend's scratch.
                    const size_t x_bytes = (repacked_x_row_bytes(wt, k) + 63) / 64 * 64;
                    std::vector<int64_t> x_store(x_bytes / 8 * size_t(n));
                    std::vector<std::vector<uint8_t>> x_rows;
                    std::vector<const void*> x_ptrs;
                    std::vector<std::vector<float>> out(size_t(n), std::vector<float>(size_t(m + 2), sentinel));
                    std::vector<float*> out_ptrs;
                    for (int64_t j = 0; j < n; ++j) {
                        // Activations at +127 and -127 among them.
                        const Data x_kind = j % 4 == 1 ? Data::AllOnes : j % 4 == 3 ? Data::AllHighBit : Data::Random;
                        x_rows.push_back(make_row(tr.vec_dot_type, k, x_kind, true, uint32_t(7 + 31 * j + k)));
                        char* dst = reinterpret_cast<char*>(x_store.data()) + size_t(j) * x_bytes;
                        std::memcpy(dst, x_rows.back().data(), x_rows.back().size());
                        repacked_x_finish(wt, dst, k);
                        x_ptrs.push_back(dst);
                        out_ptrs.push_back(out[size_t(j)].data() + 1);
                    }
                    for (Isa isa : isa_supported()) {
                        for (auto& o : out) std::fill(o.begin(), o.end(), sentinel);
                        const GemmFn gemm = kernel_table(isa).gemm_repacked[uint32_t(wt)];
                        REQUIRE(bool(gemm));
                        gemm(k, m, n, packed.data(), row_bytes, x_ptrs.data(), out_ptrs.data());
                        for (int64_t j = 0; j < n; ++j) {
                            CHECK(out[size_t(j)].front() == sentinel);
                            CHECK(out[size_t(j)].back() == sentinel);
                            for (int64_t i = 0; i < m; ++i) {
                                float want = 0.0f;
                                tr.vec_dot(k, &want, plain.data() + size_t(i) * row_bytes, x_rows[size_t(j)].data());
                                const float got = out[size_t(j)][size_t(i + 1)];
                                INFO(std::string(isa_name(isa))
                                     << " " << std::string(dtype_name(wt)) << " k=" << k << " m=" << m << " n=" << n
                                     << " at " << i << "," << j << " ref=" << want << " got=" << got);
                                const std::vector<uint8_t> w_row(plain.begin() + i * int64_t(row_bytes),
                                                                 plain.begin() + (i + 1) * int64_t(row_bytes));
                                const double scale = abs_dot(wt, w_row, tr.vec_dot_type, x_rows[size_t(j)], k);
                                REQUIRE(std::isfinite(got));
                                CHECK(std::fabs(double(got) - double(want)) <= 1e-5 * scale + 1e-30);
                            }
                        }
                    }
                }
            }
        }
    }
    CHECK(types >= 1);
}

TEST_CASE("kernels: every ISA's to_float gives the reference's floats") {
    note_skipped_isas();
    for (Isa isa : isa_supported()) {
        const KernelTable& table = kernel_table(isa);
        int compared = 0;
        for (uint32_t id = 0; id < kDTypeIdLimit; ++id) {
            const auto type = dtype_from_id(id);
            const QuantTraits* tr = type ? quant_traits(*type) : nullptr;
            if (!tr || !tr->to_float) {
                CHECK(!table.to_float[id]);
                continue;
            }
            REQUIRE(bool(table.to_float[id]));
            for (int64_t n : row_lengths(*type)) {
                for (Data kind : {Data::Random, Data::Outliers, Data::RawBits, Data::AllOnes, Data::AllHighBit}) {
                    const auto bytes = make_row(*type, n, kind, false, uint32_t(n * 7 + int(kind)));
                    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n) + 1, -7.0f);
                    tr->to_float(bytes.data(), want.data(), n);
                    table.to_float[id](bytes.data(), got.data(), n);
                    CHECK(got[size_t(n)] == -7.0f);
                    int64_t first_bad = -1;
                    for (int64_t i = n - 1; i >= 0; --i) {
                        const float g = got[size_t(i)], w = want[size_t(i)];
                        if (std::isnan(w) ? !std::isnan(g) : std::memcmp(&g, &w, 4) != 0) first_bad = i;
                    }
                    INFO(std::string(isa_name(isa))
                         << " " << std::string(dtype_name(*type)) << " n=" << n << " " << std::string(data_name(kind)));
                    CHECK(first_bad == -1);
                    ++compared;
                }
            }
        }
        MESSAGE(isa_name(isa) << ": " << compared << " rows dequantized");
    }
}

namespace {

// Random bf16 rows (normal values only: the tile unit counts bf16 denormals as zero).
std::vector<uint16_t> random_bf16(size_t count, uint32_t seed) {
    const std::vector<float> f = test::random_floats(count, seed, 2.0f);
    std::vector<uint16_t> out(count);
    for (size_t i = 0; i < count; ++i) out[i] = fp32_to_bf16(f[i]);
    return out;
}

// Weight rows (m rows of k bf16) into the two panels of quant/gemm.h; rows
// past m hold NaN bits (odd ones) or zeros: they may be read, never written out.
std::vector<uint8_t> make_panels(const std::vector<uint16_t>& w, int64_t m, int64_t k, int64_t k_pad) {
    const size_t panel_bytes = size_t(k_pad / kBf16Chunk) * kBf16ChunkBytes;
    std::vector<uint8_t> out(panel_bytes * size_t(kBf16MaxRows / kBf16PanelRows), 0xff);
    const std::vector<uint16_t> zeros(size_t(k), 0);
    for (int64_t i = 0; i < kBf16MaxRows; ++i) {
        uint8_t* panel = out.data() + size_t(i / kBf16PanelRows) * panel_bytes;
        if (i < m)
            bf16_panel_put_row(w.data() + i * k, k, k_pad, i % kBf16PanelRows, panel);
        else if (i % 2 == 0)
            bf16_panel_put_row(zeros.data(), k, k_pad, i % kBf16PanelRows, panel);
    }
    return out;
}

// Activation rows (n rows of k bf16) as the tiles read them: k_pad elements
// each (zeros past k), n rounded up to 16 rows, those past n NaN.
std::vector<uint16_t> make_x_rows(const std::vector<uint16_t>& x, int64_t n, int64_t k, int64_t k_pad) {
    const int64_t rows = (n + kBf16PanelRows - 1) / kBf16PanelRows * kBf16PanelRows;
    std::vector<uint16_t> out(size_t(rows * k_pad), 0x7fc0);
    for (int64_t j = 0; j < n; ++j) {
        std::copy_n(x.begin() + j * k, k, out.begin() + j * k_pad);
        std::fill(out.begin() + j * k_pad + k, out.begin() + (j + 1) * k_pad, uint16_t(0));
    }
    return out;
}

}  // namespace

TEST_CASE("kernels: the bf16 panel layout and reference tile product compute plain dot products") {
    // The reference reads the panels; a plain dot product over the rows does not.
    const int64_t k = 70, k_pad = 96, m = 21, n = 19;
    const auto a_rows = random_bf16(size_t(m * k), 1);
    const auto x_rows = random_bf16(size_t(n * k), 2);
    const auto panels = make_panels(a_rows, m, k, k_pad);
    const auto x = make_x_rows(x_rows, n, k, k_pad);
    std::vector<float> out(size_t(n * 40), -7.0f);
    gemm_bf16_ref(k_pad, m, n, panels.data(), x.data(), size_t(k_pad) * 2, out.data(), 40 * sizeof(float));
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t i = 0; i < m; ++i) {
            double want = 0.0;
            for (int64_t e = 0; e < k; ++e)
                want +=
                    double(bf16_to_fp32(a_rows[size_t(i * k + e)])) * double(bf16_to_fp32(x_rows[size_t(j * k + e)]));
            INFO("i=" << i << " j=" << j);
            CHECK(out[size_t(j * 40 + i)] == doctest::Approx(want).epsilon(1e-6));
        }
        CHECK(out[size_t(j * 40 + m)] == -7.0f);  // nothing past m
    }
}

TEST_CASE("kernels: the bf16 self-check passes the reference and fails wrong kernels") {
    CHECK(gemm_bf16_self_check(gemm_bf16_ref));
    // Operands swapped within a pair, a row too few, one sum off by one.
    const Bf16GemmFn wrong[] = {
        [](int64_t k_pad, int64_t m, int64_t n, const void* w, const uint16_t* x, size_t x_stride, float* out,
           size_t out_stride) { gemm_bf16_ref(k_pad, m - 1, n, w, x, x_stride, out, out_stride); },
        [](int64_t k_pad, int64_t m, int64_t n, const void* w, const uint16_t* x, size_t x_stride, float* out,
           size_t out_stride) {
            gemm_bf16_ref(k_pad, m, n, w, x, x_stride, out, out_stride);
            reinterpret_cast<float*>(reinterpret_cast<char*>(out) + size_t(n - 1) * out_stride)[m - 1] += 1.0f;
        },
        [](int64_t k_pad, int64_t m, int64_t n, const void* w, const uint16_t* x, size_t x_stride, float* out,
           size_t out_stride) {
            // Pairs read the other way round: x's element 2r + 1 with w's 2r.
            std::vector<uint16_t> swapped(size_t(n * k_pad));
            for (int64_t j = 0; j < n; ++j)
                for (int64_t e = 0; e < k_pad; ++e)
                    swapped[size_t(j * k_pad + (e ^ 1))] =
                        reinterpret_cast<const uint16_t*>(reinterpret_cast<const char*>(x) + size_t(j) * x_stride)[e];
            gemm_bf16_ref(k_pad, m, n, w, swapped.data(), size_t(k_pad) * 2, out, out_stride);
        }};
    for (Bf16GemmFn fn : wrong) CHECK_FALSE(gemm_bf16_self_check(fn));
}

TEST_CASE("kernels: every ISA's bf16 tile product equals the reference") {
    int tables = 0;
    const std::vector<TableUnderTest> under_test = tables_under_test();
    // The start-up self-check ran the emulated kernel: no use the hardware would refuse.
    CHECK(test::amx_emulator_faults() == "");
    for (const TableUnderTest& under : under_test) {
        const KernelTable& table = *under.table;
        if (table.isa != Isa::Amx) {
            CHECK(!table.gemm_bf16);  // only AMX has one
            continue;
        }
        REQUIRE(bool(table.gemm_bf16));
        ++tables;
        struct Shape {
            int64_t k, m, n;
        };
        for (Shape s : {Shape{32, 1, 1}, Shape{64, 16, 16}, Shape{96, 32, 32}, Shape{1536, 32, 67}, Shape{160, 17, 33},
                        Shape{224, 5, 50}, Shape{4096, 24, 16}}) {
            const int64_t k_pad = s.k;
            // Weight rows past m and activation rows past n (up to 32 and the
            // next 16) hold NaN: they may be read, never written out.
            const auto panels = make_panels(random_bf16(size_t(s.m * s.k), uint32_t(s.k + s.m)), s.m, s.k, k_pad);
            const auto x = make_x_rows(random_bf16(size_t(s.n * s.k), uint32_t(s.n)), s.n, s.k, k_pad);
            const size_t stride = size_t(s.m + 3) * sizeof(float);
            std::vector<float> want(size_t(s.n * (s.m + 3)), -7.0f), got = want;
            gemm_bf16_ref(k_pad, s.m, s.n, panels.data(), x.data(), size_t(k_pad) * 2, want.data(), stride);
            table.gemm_bf16(k_pad, s.m, s.n, panels.data(), x.data(), size_t(k_pad) * 2, got.data(), stride);
            double err = 0.0, ref = 0.0;
            bool untouched = true;
            for (int64_t j = 0; j < s.n; ++j) {
                for (int64_t i = 0; i < s.m + 3; ++i) {
                    const double g = got[size_t(j * (s.m + 3) + i)], w = want[size_t(j * (s.m + 3) + i)];
                    if (i >= s.m) {
                        untouched = untouched && g == -7.0f;
                        continue;
                    }
                    err += (g - w) * (g - w);
                    ref += w * w;
                }
            }
            INFO(under.label << " k=" << s.k << " m=" << s.m << " n=" << s.n);
            CHECK(untouched);
            CHECK(err <= 1e-10 * ref);  // float sums against double ones
        }
    }
    CHECK(test::amx_emulator_faults() == "");
    if (tables == 0) MESSAGE("SKIPPED: no AMX table, native or emulated; the bf16 tile product was not run");
}

TEST_CASE("kernels: every ISA's scale_add equals the reference up to rounding") {
    note_skipped_isas();
    for (Isa isa : isa_supported()) {
        const KernelTable& table = kernel_table(isa);
        REQUIRE(bool(table.scale_add));
        for (int64_t n : {1, 7, 8, 9, 31, 64, 513}) {
            const std::vector<float> x = test::random_floats(size_t(n), uint32_t(n), 3.0f);
            const std::vector<float> y0 = test::random_floats(size_t(n), uint32_t(n + 1000), 2.0f);
            for (auto [a, b] : {std::pair{1.0f, 0.5f}, std::pair{0.25f, -1.5f}, std::pair{0.0f, 1.0f}}) {
                std::vector<float> want = y0, got = y0;
                got.push_back(-7.0f);
                scale_add_f32(n, want.data(), a, x.data(), b);
                table.scale_add(n, got.data(), a, x.data(), b);
                CHECK(got.back() == -7.0f);
                double worst = 0;
                for (int64_t i = 0; i < n; ++i) {
                    const double scale = std::fabs(a * y0[size_t(i)]) + std::fabs(b * x[size_t(i)]) + 1e-30;
                    worst = std::max(worst, std::fabs(double(got[size_t(i)]) - double(want[size_t(i)])) / scale);
                }
                INFO(std::string(isa_name(isa)) << " n=" << n << " a=" << a << " b=" << b);
                CHECK(worst <= 1e-6);  // one fused rounding against two
            }
        }
    }
}

TEST_CASE("kernels: every ISA's swiglu equals the reference up to rounding") {
    note_skipped_isas();
    for (Isa isa : isa_supported()) {
        const KernelTable& table = kernel_table(isa);
        REQUIRE(bool(table.swiglu));
        for (int64_t n : {1, 7, 8, 9, 31, 64, 513}) {
            std::vector<float> g = test::random_floats(size_t(n), uint32_t(n), 6.0f);
            const std::vector<float> u = test::random_floats(size_t(n), uint32_t(n + 1000), 2.0f);
            // the exp's edges: far below its range, huge, zero, infinities, NaN
            const float edges[] = {-100.0f, -87.0f, 88.0f, 1e30f, -0.0f, INFINITY, -INFINITY, NAN};
            for (size_t e = 0; e < std::size(edges) && e < size_t(n); ++e) g[size_t(n - 1) - e] = edges[e];
            std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n) + 1, -7.0f);
            swiglu_f32(n, g.data(), u.data(), want.data());
            table.swiglu(n, g.data(), u.data(), got.data());
            CHECK(got.back() == -7.0f);
            for (int64_t i = 0; i < n; ++i) {
                const float w = want[size_t(i)], o = got[size_t(i)];
                INFO(std::string(isa_name(isa))
                     << " n=" << n << " g=" << g[size_t(i)] << " u=" << u[size_t(i)] << " ref=" << w << " got=" << o);
                if (std::isnan(w) || std::isinf(w)) {
                    CHECK((std::isnan(w) ? std::isnan(o) : o == w));
                    continue;
                }
                // a few ulp of the exp, the division and two products
                CHECK(std::fabs(double(o) - double(w)) <= 2e-6 * std::fabs(double(w)) + 1e-37);
            }
        }
    }
}

TEST_CASE("kernels: every ISA's blocked-attention kernels equal the references up to rounding") {
    note_skipped_isas();
    for (Isa isa : isa_supported()) {
        const KernelTable& table = kernel_table(isa);
        REQUIRE((table.attn_scores && table.transpose32 && table.attn_accumulate && table.exp_sub));
        // The transposition is exact, strided on both sides, and writes nothing else.
        for (auto [d, n] : {std::pair{1, 1}, std::pair{8, 8}, std::pair{7, 8}, std::pair{64, 8}, std::pair{40, 5},
                            std::pair{576, 8}, std::pair{19, 13}, std::pair{3, 24}}) {
            INFO(std::string(isa_name(isa)) << " d=" << d << " n=" << n);
            const size_t row_stride = size_t(d) + 3, dst_stride = size_t(n) + 5;
            const auto src = test::random_floats(size_t(n) * row_stride, uint32_t(d * 31 + n), 1.0f);
            std::vector<float> want(size_t(d) * dst_stride, -7.0f), got = want;
            transpose32_ref(d, n, src.data(), row_stride, want.data(), dst_stride);
            table.transpose32(d, n, src.data(), row_stride, got.data(), dst_stride);
            CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
            CHECK(want[size_t(d - 1) * dst_stride + size_t(n - 1)] == src[size_t(n - 1) * row_stride + size_t(d - 1)]);
        }
        // Row and column counts across the kernels' tiles (4 rows, 16 and 8 columns) and their tails.
        for (auto [rows, keys, d] : {std::tuple{1, 1, 1}, std::tuple{4, 16, 64}, std::tuple{7, 37, 40},
                                     std::tuple{32, 64, 576}, std::tuple{5, 8, 3}, std::tuple{3, 23, 129}}) {
            INFO(std::string(isa_name(isa)) << " rows=" << rows << " keys=" << keys << " d=" << d);
            const size_t q_stride = size_t(d) + 3, kt_stride = size_t(keys) + 5, s_stride = size_t(keys) + 2;
            const auto qv = test::random_floats(size_t(rows) * q_stride, uint32_t(rows + d), 1.0f);
            const auto kv = test::random_floats(size_t(d) * kt_stride, uint32_t(keys + d), 1.0f);
            std::vector<float> want(size_t(rows) * s_stride, -7.0f), got = want;
            attn_scores_f32(rows, keys, d, qv.data(), q_stride, kv.data(), kt_stride, want.data(), s_stride);
            table.attn_scores(rows, keys, d, qv.data(), q_stride, kv.data(), kt_stride, got.data(), s_stride);
            double worst = 0.0;
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t j = 0; j < keys; ++j) {
                    double scale = 1e-30;  // the sum of |terms| bounds the rounding
                    for (int64_t i = 0; i < d; ++i)
                        scale += std::fabs(double(qv[size_t(r) * q_stride + size_t(i)]) * kv[size_t(i) * kt_stride + size_t(j)]);
                    const size_t at = size_t(r) * s_stride + size_t(j);
                    worst = std::max(worst, std::fabs(double(got[at]) - want[at]) / scale);
                }
                CHECK(got[size_t(r) * s_stride + size_t(keys)] == -7.0f);  // nothing past keys
            }
            CHECK(worst <= 1e-6);

            // acc += p v over dv = d columns, p in [0, 1] as after exp.
            const int64_t dv = d;
            const size_t p_stride = size_t(keys) + 1, v_stride = size_t(dv) + 4, acc_stride = size_t(dv) + 3;
            auto pv = test::random_floats(size_t(rows) * p_stride, uint32_t(7 * rows), 1.0f);
            for (float& x : pv) x = std::fabs(x);
            const auto vv = test::random_floats(size_t(keys) * v_stride, uint32_t(9 * keys), 1.0f);
            const auto acc0 = test::random_floats(size_t(rows) * acc_stride, uint32_t(11 * d), 1.0f);
            std::vector<float> acc_want = acc0, acc_got = acc0;
            attn_accumulate_f32(rows, keys, dv, pv.data(), p_stride, vv.data(), v_stride, acc_want.data(), acc_stride);
            table.attn_accumulate(rows, keys, dv, pv.data(), p_stride, vv.data(), v_stride, acc_got.data(), acc_stride);
            worst = 0.0;
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t c = 0; c < dv; ++c) {
                    double scale = std::fabs(acc0[size_t(r) * acc_stride + size_t(c)]) + 1e-30;
                    for (int64_t j = 0; j < keys; ++j)
                        scale += std::fabs(double(pv[size_t(r) * p_stride + size_t(j)]) * vv[size_t(j) * v_stride + size_t(c)]);
                    const size_t at = size_t(r) * acc_stride + size_t(c);
                    worst = std::max(worst, std::fabs(double(acc_got[at]) - acc_want[at]) / scale);
                }
                CHECK(acc_got[size_t(r) * acc_stride + size_t(dv)] == acc0[size_t(r) * acc_stride + size_t(dv)]);
            }
            CHECK(worst <= 1e-6);
        }
        // exp(x - m) over x <= m: -inf gives 0, tiny arguments underflow, NaN stays NaN.
        std::vector<float> x = test::random_floats(203, 5, 30.0f);
        for (float& e : x) e = -std::fabs(e);
        x[3] = -std::numeric_limits<float>::infinity();
        x[17] = 0.0f;
        x[40] = -80.0f;
        x[41] = -87.0f;
        x[42] = -120.0f;
        x[100] = std::numeric_limits<float>::quiet_NaN();
        std::vector<float> want = x, got = x;
        want[100] = got[100] = 0.0f;  // the sums compared without the NaN
        const float m = 0.25f;
        const float sum_want = exp_sub_f32(int64_t(want.size()), want.data(), m);
        const float sum_got = table.exp_sub(int64_t(got.size()), got.data(), m);
        CHECK(sum_got == doctest::Approx(sum_want).epsilon(1e-6));
        for (size_t i = 0; i < x.size(); ++i) {
            INFO(std::string(isa_name(isa)) << " x=" << x[i]);
            CHECK(std::fabs(double(got[i]) - want[i]) <= 4e-7 * want[i] + 1e-37);
        }
        CHECK(got[3] == 0.0f);
        std::vector<float> nan_row(9, -1.0f);
        nan_row[2] = std::numeric_limits<float>::quiet_NaN();
        table.exp_sub(9, nan_row.data(), 0.0f);
        CHECK(std::isnan(nan_row[2]));
    }
}

TEST_CASE("kernels: every ISA's quantize_row writes the reference's bytes") {
    const DType types[] = {DType::F16, DType::BF16, DType::Q8_0, DType::Q8_1, DType::Q8_K};
    for (const TableUnderTest& under : tables_under_test()) {
        const KernelTable& table = *under.table;
        int rows = 0;
        for (DType type : types) {
            if (!quant_traits(type)) continue;
            const FromFloatFn fn = table.quantize_row[uint32_t(type)];
            REQUIRE((fn != nullptr));
            const int64_t bs = dtype_block_size(type);
            std::vector<std::pair<std::string, std::vector<float>>> inputs;
            for (int64_t blocks : {1, 3, 8, 17}) {
                const int64_t n = blocks * (bs == 1 ? 37 : bs);
                inputs.push_back({"random", test::random_floats(size_t(n), uint32_t(blocks), 2.0f)});
            }
            const int64_t n = bs == 1 ? 1024 : 4 * bs;
            // halfway cases: with amax 127 the Q8_0 scale is exactly 1, so
            // every x.5 is a tie; for Q8_K, -127/max is -1
            std::vector<float> ties(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) ties[size_t(i)] = float(int(i % 254) - 127) + (i % 3 ? 0.5f : 0.0f);
            for (int64_t i = 0; i < n; i += 32) ties[size_t(i)] = (i / 32) % 2 ? 127.0f : -127.0f;
            inputs.push_back({"ties", ties});
            // equal magnitudes of both signs: the first decides Q8_K's sign
            std::vector<float> signs(size_t(n), 0.25f);
            for (int64_t i = 0; i < n; i += 7) signs[size_t(i)] = (i / 7) % 2 ? 4.0f : -4.0f;
            inputs.push_back({"signed maxima", signs});
            inputs.push_back({"zeros", std::vector<float>(size_t(n), 0.0f)});
            inputs.push_back({"tiny", std::vector<float>(size_t(n), 1e-39f)});
            inputs.push_back({"huge", test::random_floats(size_t(n), 5, 1e37f)});
            std::vector<float> special = test::random_floats(size_t(n), 6);
            special[3] = NAN;
            special[size_t(n / 2)] = INFINITY;
            special[size_t(n - 1)] = -INFINITY;
            special[size_t(n / 3)] = 65520.0f;   // f16 overflow tie
            special[size_t(n / 4)] = 6.0e-8f;    // f16 subnormal
            special[size_t(n / 5)] = 1.0e-41f;   // f32 subnormal
            inputs.push_back({"special", special});

            for (const auto& [name, x] : inputs) {
                const int64_t len = int64_t(x.size());
                const std::vector<uint8_t> want = quantize_ref(type, x);
                std::vector<uint8_t> got(want.size(), 0xcd);
                fn(x.data(), got.data(), len);
                size_t differing = 0;
                for (size_t i = 0; i < want.size(); ++i) differing += want[i] != got[i];
                INFO(under.label << " " << std::string(dtype_name(type)) << " input=" << name << " n=" << len);
                CHECK(differing == 0);
                ++rows;
                // and the output is a valid rounding of the input (finite blocks)
                if (name == "special") continue;
                const std::vector<float> back = dequantize(type, got, len);
                for (int64_t b = 0; b < len / bs; ++b) {
                    float amax = 0.0f;
                    for (int64_t j = 0; j < bs; ++j) amax = std::max(amax, std::fabs(x[size_t(b * bs + j)]));
                    const float step = bs == 1 ? 0.0f : amax / 127.0f;
                    for (int64_t j = 0; j < bs; ++j) {
                        const size_t k = size_t(b * bs + j);
                        const float tol = bs == 1 ? std::fabs(x[k]) * (type == DType::BF16 ? 4e-3f : 1e-3f) + 6e-8f
                                                  : 0.57f * step + 1e-30f;  // half a step, plus the f16 rounding of d
                        if (std::isinf(back[k]) && std::fabs(x[k]) > 6.5e4f) continue;  // f16 overflow
                        if (!(std::fabs(back[k] - x[k]) <= tol)) {
                            FAIL_CHECK("element " << k << ": " << x[k] << " came back as " << back[k]);
                            break;
                        }
                    }
                }
            }
        }
        MESSAGE(under.label << ": " << rows << " quantized rows compared byte for byte");
    }
}

TEST_CASE("kernels: MOELITE_ISA names and caps") {
    CHECK(isa_from_name("scalar") == Isa::Scalar);
    CHECK(isa_from_name("AVX2") == Isa::Avx2);
    CHECK(isa_from_name("avx512") == Isa::Avx512);
    CHECK(isa_from_name("Avx512Vnni") == Isa::Avx512Vnni);
    CHECK(isa_from_name("amx") == Isa::Amx);
    CHECK_FALSE(isa_from_name("avx").has_value());
    CHECK_FALSE(isa_from_name("").has_value());
    CHECK_FALSE(isa_from_name("avx2 ").has_value());
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Amx}) {
        CHECK(isa_from_name(isa_name(isa)) == isa);
    }

    std::vector<std::string> warnings;
    log_set_callback([&](LogLevel level, const std::string& text) {
        if (level == LogLevel::Warn) warnings.push_back(text);
    });
    // no request, or "auto": the machine's best, silently
    CHECK(isa_parse_cap(nullptr, Isa::Avx512Vnni) == Isa::Avx512Vnni);
    CHECK(isa_parse_cap("", Isa::Avx2) == Isa::Avx2);
    CHECK(isa_parse_cap("auto", Isa::Avx2) == Isa::Avx2);
    CHECK(warnings.empty());
    // a cap at or below the machine's best is taken, silently
    CHECK(isa_parse_cap("scalar", Isa::Avx2) == Isa::Scalar);
    CHECK(isa_parse_cap("avx2", Isa::Avx2) == Isa::Avx2);
    CHECK(isa_parse_cap("avx2", Isa::Amx) == Isa::Avx2);
    CHECK(isa_parse_cap("AVX512", Isa::Avx512Vnni) == Isa::Avx512);
    CHECK(warnings.empty());
    // asking for more than the machine has: warned, never raised
    CHECK(isa_parse_cap("avx512", Isa::Avx2) == Isa::Avx2);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("avx512") != std::string::npos);
    CHECK(isa_parse_cap("amx", Isa::Scalar) == Isa::Scalar);
    CHECK(warnings.size() == 2);
    // an unknown name: warned, ignored
    CHECK(isa_parse_cap("sse9", Isa::Avx2) == Isa::Avx2);
    REQUIRE(warnings.size() == 3);
    CHECK(warnings[2].find("sse9") != std::string::npos);
    log_set_callback(nullptr);

    CHECK(int(isa_active()) <= int(isa_machine_best()));
}

TEST_CASE("kernels: isa_supported agrees with cpu_features and the kernel's cpuinfo") {
    const CpuFeatures& f = cpu_features();
    const std::vector<Isa> supported = isa_supported();
    REQUIRE(!supported.empty());
    CHECK(supported.front() == Isa::Scalar);
    CHECK(supported.back() == isa_machine_best());
    for (size_t i = 0; i < supported.size(); ++i) CHECK(int(supported[i]) == int(i));  // a prefix, in order

    auto has = [&](Isa isa) { return int(isa) <= int(isa_machine_best()); };
    const bool avx2 = f.avx && f.avx2 && f.fma && f.f16c && f.bmi2 && f.os_avx;
    const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.os_avx512;
    CHECK(has(Isa::Avx2) == avx2);
    CHECK(has(Isa::Avx512) == avx512);
    CHECK(has(Isa::Avx512Vnni) == (avx512 && f.avx512vnni));
    CHECK(has(Isa::Amx) == (avx512 && f.avx512vnni && f.amx_tile && f.amx_int8 && f.amx_bf16 && f.os_amx));
    if (f.os_amx) CHECK(f.amx_tile);

    // Linux says what it found independently; the CPUID bits must match it.
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line, flags;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("flags", 0) == 0) {
            flags.assign(1, ' ');  // (built up in steps: GCC 12 warns falsely on " " + std::string, and on = " ")
            flags.append(line, line.find(':') + 1, std::string::npos);
            flags += " ";
            break;
        }
    }
    if (flags.empty()) {
        MESSAGE("SKIPPED: no /proc/cpuinfo flags to compare with");
        return;
    }
    auto listed = [&](const char* name) { return flags.find(std::string(" ") + name + " ") != std::string::npos; };
    CHECK(f.avx == listed("avx"));
    CHECK(f.avx2 == listed("avx2"));
    CHECK(f.fma == listed("fma"));
    CHECK(f.f16c == listed("f16c"));
    CHECK(f.bmi2 == listed("bmi2"));
    CHECK(f.avx512f == listed("avx512f"));
    CHECK(f.avx512bw == listed("avx512bw"));
    CHECK(f.avx512vl == listed("avx512vl"));
    CHECK(f.avx512dq == listed("avx512dq"));
    CHECK(f.avx512vnni == listed("avx512_vnni"));
    CHECK(f.amx_tile == listed("amx_tile"));
    MESSAGE("machine best: " << std::string(isa_name(isa_machine_best())) << ", active: " << std::string(isa_name(isa_active())));
}

TEST_CASE("kernels: tables are complete and the SIMD kernels are the ones selected") {
    for (Isa isa : isa_supported()) {
        const KernelTable& table = kernel_table(isa);
        CHECK(table.isa == isa);
        for (DType type : dot_types()) CHECK((table.vec_dot[uint32_t(type)] != nullptr));
        for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q8_1, DType::Q8_K}) {
            if (quant_traits(type)) CHECK((table.quantize_row[uint32_t(type)] != nullptr));
        }
    }
    const KernelTable& scalar = kernel_table(Isa::Scalar);
    CHECK((scalar.vec_dot[uint32_t(DType::Q4_0)] == traits_of(DType::Q4_0).vec_dot ? true : false));
    if (int(isa_machine_best()) < int(Isa::Avx2)) {
        MESSAGE("SKIPPED: no AVX2 on this CPU");
        return;
    }
    const KernelTable& avx2 = kernel_table(Isa::Avx2);
    for (DType type : dot_types()) CHECK((scalar.gemm[uint32_t(type)] == nullptr));
    for (DType type : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        INFO(std::string(dtype_name(type)));
        CHECK((avx2.gemm[uint32_t(type)] != nullptr));
    }
    for (DType type : {DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::F16}) {
        INFO(std::string(dtype_name(type)));
        CHECK((avx2.vec_dot[uint32_t(type)] != traits_of(type).vec_dot ? true : false));
    }
    for (DType type : {DType::Q8_0, DType::Q8_K}) {
        CHECK((avx2.quantize_row[uint32_t(type)] != traits_of(type).from_float ? true : false));
    }
    if (int(isa_machine_best()) >= int(Isa::Avx512)) {
        const KernelTable& avx512 = kernel_table(Isa::Avx512);
        CHECK((avx512.vec_dot[uint32_t(DType::Q4_0)] != avx2.vec_dot[uint32_t(DType::Q4_0)] ? true : false));
    }
    // The emulated tables carry their own kernels where the ISA has them, so
    // the tests over them run the emulated builds, not AVX2's entries.
    for (const test::EmulatedTable& e : test::emulated_tables()) {
        INFO(e.label);
        if (e.table.isa == Isa::Amx) CHECK(bool(e.table.gemm_bf16));
        if (test::emulation_gaps().empty()) {
            for (DType type : {DType::F32, DType::F16, DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K})
                CHECK((e.table.vec_dot[uint32_t(type)] != avx2.vec_dot[uint32_t(type)] ? true : false));
            for (DType type : {DType::Q8_0, DType::Q8_K})
                CHECK((e.table.quantize_row[uint32_t(type)] != avx2.quantize_row[uint32_t(type)] ? true : false));
        }
    }
}

// The per-ISA objects must not hand the linker anything it could merge with
// baseline code: no weak or COMDAT symbol (an inline function or template
// instantiated with wide instructions), and no global but the registration
// function. Reads the objects of the build the test runs from.
TEST_CASE("kernels: per-ISA objects export only their registration function") {
    const auto build = test::moelite_binary().parent_path() / "CMakeFiles";
    const auto dir = build / "moelite.dir" / "quant";
    int checked = 0;
    struct Unit {
        std::string object;              // under quant/ (or tests/: the emulated builds), without .cpp.o
        std::vector<std::string> fills;  // its registration functions, under moelite::
    };
    const Unit units[] = {{"kernels_avx2", {"fill_kernels_avx2", "fill_float_rows_avx2"}},
                          {"kernels_avx512", {"fill_kernels_avx512"}},
                          {"kernels_avx512vnni", {"fill_kernels_avx512vnni"}},
                          {"gemm_avx2", {"fill_gemm_avx2"}},
                          {"gemm_repacked_avx2", {"fill_gemm_repacked_avx2"}},
                          {"gemm_amx", {"fill_gemm_amx"}},
                          {"dequant_avx2", {"fill_dequant_avx2"}},
                          {"attn_avx2", {"fill_attn_avx2"}},
                          {"../../moelite_tests.dir/tests/emulated_avx512", {"test::fill_kernels_avx512_emulated"}},
                          {"../../moelite_tests.dir/tests/emulated_avx512vnni",
                           {"test::fill_kernels_avx512vnni_emulated"}}};
    for (const Unit& unit : units) {
        const auto obj = dir / (unit.object + ".cpp.o");
        if (!std::filesystem::exists(obj)) continue;
        std::string out;
        if (test::run_command("nm --defined-only -C '" + obj.string() + "'", &out) != 0) {
            MESSAGE("SKIPPED: nm is not available");
            return;
        }
        std::istringstream lines(out);
        std::string line;
        while (std::getline(lines, line)) {
            // "<address> <type> <name>"
            if (line.size() < 19) continue;
            const char kind = line[17];
            const std::string name = line.substr(19);
            // The unwinder's pointer to the C++ personality routine (emitted
            // where a function has cleanups, e.g. under the sanitizers) is
            // data, not code built with the unit's flags.
            if (name == "DW.ref.__gxx_personality_v0") continue;
            INFO(obj.filename().string() << ": " << line);
            CHECK(kind != 'W');
            CHECK(kind != 'V');
            CHECK(kind != 'u');
            CHECK(kind != 'i');
            if (kind == 'T' || kind == 'D' || kind == 'B' || kind == 'R') {
                bool known = false;
                for (const std::string& fill : unit.fills) known = known || name.find("moelite::" + fill + "(") == 0;
                CHECK(known);
            }
        }
        ++checked;
    }
    if (checked == 0) MESSAGE("SKIPPED: per-ISA objects not found under " << dir.string());
}

// The rest of the library is baseline x86-64: no VEX or EVEX instruction (every
// such mnemonic starts with 'v') outside the per-ISA objects, or a CPU without
// AVX would die on an illegal instruction.
TEST_CASE("kernels: baseline objects hold no AVX instruction") {
#if defined(__x86_64__)
    const auto dir = test::moelite_binary().parent_path() / "CMakeFiles" / "moelite.dir";
    if (!std::filesystem::is_directory(dir)) {
        MESSAGE("SKIPPED: library objects not found under " << dir.string());
        return;
    }
    int checked = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() != ".o") continue;
        bool wide = false;
        for (const char* suffix : {"_avx2.cpp.o", "_avx512.cpp.o", "_avx512vnni.cpp.o", "_amx.cpp.o"}) {
            const std::string s(suffix);
            wide |= name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
        }
        if (wide) continue;
        std::string out;
        if (test::run_command("objdump -d --no-show-raw-insn '" + entry.path().string() + "'", &out) != 0) {
            MESSAGE("SKIPPED: objdump is not available");
            return;
        }
        std::istringstream lines(out);
        std::string line;
        int vector_ops = 0;
        std::string first;
        while (std::getline(lines, line)) {
            // "  addr:\tmnemonic operands"
            const size_t tab = line.find('\t');
            if (tab == std::string::npos || tab + 1 >= line.size() || line[tab + 1] != 'v') continue;
            if (line.compare(tab + 1, 4, "verr") == 0 || line.compare(tab + 1, 4, "verw") == 0) continue;
            if (vector_ops++ == 0) first = line;
        }
        INFO(name << ": " << first);
        CHECK(vector_ops == 0);
        ++checked;
    }
    CHECK(checked > 0);
#else
    MESSAGE("SKIPPED: not an x86-64 build");
#endif
}

// Not a test: timings of each ISA's dot products against the reference on a
// 4096-element row. Run with ./build/moelite_tests -tc='*speed*' --no-skip.
TEST_CASE("kernels: speed of each ISA's vec_dot against the scalar reference" * doctest::skip()) {
    const int64_t n = 4096;
    for (DType wt : dot_types()) {
        const QuantTraits& tr = traits_of(wt);
        const auto x = make_row(wt, n, Data::Random, false, 1);
        const auto y = make_row(tr.vec_dot_type, n, Data::Random, true, 2);
        auto time_ns = [&](VecDotFn fn) {
            float s = 0.0f, sink = 0.0f;
            int reps = 0;
            const auto start = std::chrono::steady_clock::now();
            double elapsed = 0.0;
            do {
                for (int r = 0; r < 64; ++r, ++reps) {
                    fn(n, &s, x.data(), y.data());
                    sink += s;
                }
                elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            } while (elapsed < 0.2);
            CHECK(std::isfinite(sink));
            return elapsed * 1e9 / reps;
        };
        const double ref_ns = time_ns(tr.vec_dot);
        std::ostringstream line;
        line << dtype_name(wt) << ": scalar " << ref_ns << " ns";
        for (Isa isa : isa_supported()) {
            if (isa == Isa::Scalar) continue;
            const VecDotFn fn = kernel_table(isa).vec_dot[uint32_t(wt)];
            if (fn == tr.vec_dot) continue;
            const double ns = time_ns(fn);
            line << ", " << isa_name(isa) << " " << ns << " ns (x" << ref_ns / ns << ")";
        }
        MESSAGE(line.str());
    }
}

// Not a test: timings of the tile kernels (plain and, for the types with a
// layout, repacked: quant/repack.h) against loops of the same ISA's vec_dot,
// per output, on 16 weight rows of 1536 elements (in cache; TILE_M=16384 in
// the environment streams them from memory) times 1 (decode) and 64
// (prefill) activation rows. Run with
// ./build/moelite_tests -tc='*tile speed*' --no-skip.
TEST_CASE("kernels: tile speed against vec_dot loops" * doctest::skip()) {
    const int64_t k = 1536, m = std::getenv("TILE_M") ? std::max(8, std::atoi(std::getenv("TILE_M")) / 8 * 8) : 16;
    const KernelTable& table = kernels();
    for (DType wt : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        const QuantTraits& tr = traits_of(wt);
        const size_t row_bytes = dtype_row_bytes(wt, k);
        std::vector<uint8_t> w;
        for (int64_t i = 0; i < m; ++i) {
            const auto row = make_row(wt, k, Data::Random, false, uint32_t(i));
            w.insert(w.end(), row.begin(), row.end());
        }
        for (int64_t n : {1, 64}) {
            std::vector<std::vector<uint8_t>> x;
            std::vector<const void*> x_ptrs;
            std::vector<float> out(size_t(m * n));
            std::vector<float*> out_ptrs;
            for (int64_t j = 0; j < n; ++j) {
                x.push_back(make_row(tr.vec_dot_type, k, Data::Random, true, uint32_t(100 + j)));
                out_ptrs.push_back(out.data() + j * m);
            }
            for (const auto& r : x) x_ptrs.push_back(r.data());
            auto time_ns = [&](bool tiles) {
                KernelTable loops = table;
                loops.gemm[uint32_t(wt)] = nullptr;
                const KernelTable& use = tiles ? table : loops;
                int reps = 0;
                const auto start = std::chrono::steady_clock::now();
                double elapsed = 0.0;
                do {
                    for (int r = 0; r < 16; ++r, ++reps) {
                        gemm_tiles(use, wt, k, m, n, w.data(), row_bytes, x_ptrs.data(), out_ptrs.data());
                    }
                    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                } while (elapsed < 0.3);
                CHECK(std::isfinite(out[0]));
                return elapsed * 1e9 / double(reps) / double(m * n);
            };
            const double loop_ns = time_ns(false), tile_ns = time_ns(true);
            MESSAGE(std::string(dtype_name(wt)) << " n=" << n << ": vec_dot " << loop_ns << " ns/output, tiles "
                                                << tile_ns << " ns/output (x" << loop_ns / tile_ns << ")");
            if (!repack_supported(wt, k, m)) continue;
            std::vector<uint8_t> packed(w.size());
            repack_rows(wt, k, m, w.data(), row_bytes, packed.data(), repack_chunks_ref);
            const size_t x_bytes = (repacked_x_row_bytes(wt, k) + 63) / 64 * 64;
            std::vector<int64_t> x_store(x_bytes / 8 * size_t(n));
            std::vector<const void*> xr_ptrs;
            for (int64_t j = 0; j < n; ++j) {
                char* dst = reinterpret_cast<char*>(x_store.data()) + size_t(j) * x_bytes;
                std::memcpy(dst, x[size_t(j)].data(), x[size_t(j)].size());
                repacked_x_finish(wt, dst, k);
                xr_ptrs.push_back(dst);
            }
            int reps = 0;
            const auto start = std::chrono::steady_clock::now();
            double elapsed = 0.0;
            do {
                for (int r = 0; r < 16; ++r, ++reps)
                    table.gemm_repacked[uint32_t(wt)](k, m, n, packed.data(), row_bytes, xr_ptrs.data(), out_ptrs.data());
                elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            } while (elapsed < 0.3);
            const double packed_ns = elapsed * 1e9 / double(reps) / double(m * n);
            MESSAGE(std::string(dtype_name(wt)) << " n=" << n << ": repacked " << packed_ns << " ns/output (x"
                                                << loop_ns / packed_ns << " against vec_dot)");
        }
    }
}

// Not a test: where the time of mul_mat's AMX path goes, per type: turning a
// weight row of 1536 elements into bf16 (the table's to_float, then its BF16
// quantize_row), per element, and the bf16 tile product of 32 such rows with
// 64 and 512 activation rows, per output (where the table has AMX).
// Run with ./build/moelite_tests -tc='*bf16 tile speed*' --no-skip.
TEST_CASE("kernels: bf16 tile speed" * doctest::skip()) {
    const KernelTable& table = kernels();
    const int64_t k = 1536, m = 32;
    auto seconds_per = [](auto&& body) {
        int reps = 0;
        const auto start = std::chrono::steady_clock::now();
        double elapsed = 0.0;
        do {
            body();
            ++reps;
            elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        } while (elapsed < 0.2);
        return elapsed / reps;
    };
    std::vector<float> floats(static_cast<size_t>(k));
    std::vector<uint16_t> bf16(static_cast<size_t>(m * k));
    for (DType wt : {DType::Q4_0, DType::Q5_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        std::vector<uint8_t> w;
        for (int64_t i = 0; i < m; ++i) {
            const auto row = make_row(wt, k, Data::Random, false, uint32_t(i));
            w.insert(w.end(), row.begin(), row.end());
        }
        const size_t row_bytes = dtype_row_bytes(wt, k);
        const double dequantize = seconds_per([&] {
            for (int64_t i = 0; i < m; ++i)
                table.to_float[uint32_t(wt)](w.data() + size_t(i) * row_bytes, floats.data(), k);
        });
        const double round = seconds_per([&] {
            for (int64_t i = 0; i < m; ++i)
                table.quantize_row[uint32_t(DType::BF16)](floats.data(), bf16.data() + i * k, k);
        });
        MESSAGE(std::string(dtype_name(wt)) << ": to float " << dequantize * 1e9 / double(m * k)
                                            << " ns/element, then to bf16 " << round * 1e9 / double(m * k));
    }
    if (!table.gemm_bf16) {
        MESSAGE("SKIPPED: the active table (" << std::string(isa_name(table.isa)) << ") has no bf16 tile product");
        return;
    }
    const auto panels = make_panels(bf16, m, k, k);
    for (int64_t n : {64, 512}) {
        const auto x = make_x_rows(random_bf16(size_t(n * k), 5), n, k, k);
        std::vector<float> out(size_t(n * m));
        const double t = seconds_per([&] {
            table.gemm_bf16(k, m, n, panels.data(), x.data(), size_t(k) * 2, out.data(), size_t(m) * sizeof(float));
        });
        MESSAGE("bf16 tiles n=" << n << ": " << t * 1e9 / double(m * n) << " ns/output, "
                                << 2.0 * double(m * n * k) / t * 1e-9 << " GFLOP/s");
    }
}
