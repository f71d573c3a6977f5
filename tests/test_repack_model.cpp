// Weights repacked at load (quant/repack.h, CpuBackend::adopt_weight): which
// weights a model hands over, that the forward pass over them gives the
// logits of the file's layout, and that no op but mul_mat accepts them; and
// the weights the backend copies as they are.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "backends/cpu/cpu_backend.h"
#include "core/graph.h"
#include "core/host_memory.h"
#include "models/model.h"
#include "models/session.h"
#include "models/synth.h"
#include "quant/kernels.h"
#include "quant/repack.h"
#include "tests/emulated.h"
#include "tests/test_util.h"
#include "tests/tiny_models.h"

using namespace moelite;

namespace {

std::vector<float> logits_of(const std::shared_ptr<const Model>& model, CpuBackend& cpu,
                             const std::vector<int32_t>& toks, bool one_by_one) {
    Session s(model, cpu, SessionOptions{64, 512, DType::F32});
    return test::eval_logits(s, toks, one_by_one);
}

// Whether t's data still lies in the model's mapped file (not adopted).
bool in_mapped_file(const Model& model, const Tensor& t) {
    const auto* begin = static_cast<const uint8_t*>(model.file().file_data());
    const auto* at = static_cast<const uint8_t*>(t.data);
    return at >= begin && at < begin + model.file().file_size();
}

void check_repacked_model(const HParams& hp, const std::string& what) {
    test::TempDir dir;
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, synth_type(DType::Q4_0));

    CpuBackendOptions plain_options{2, std::nullopt};
    plain_options.adopt_weights = false;
    CpuBackend plain_cpu(plain_options), cpu(CpuBackendOptions{2, std::nullopt});
    auto plain = Model::load(path, plain_cpu);
    auto model = Model::load(path, cpu);

    int repacked = 0;
    for (const Tensor& t : plain->weights()) CHECK((t.flags & kTensorRepacked) == 0);
    for (const Tensor& t : model->weights()) {
        const bool expert = t.name.find("_exps") != std::string::npos;
        const bool eligible = t.type == DType::Q4_0 && t.ne[2] == 1 && t.ne[1] % kRepackRows == 0 && !expert &&
                              t.name != "token_embd.weight";
        INFO(what << ": " << t.name);
        CHECK(((t.flags & kTensorRepacked) != 0) == eligible);
        if (t.flags & kTensorRepacked) {
            ++repacked;
            CHECK(t.buffer != nullptr);
            CHECK(t.buffer->is_host());
        }
    }
    MESSAGE(what << ": " << repacked << " weights repacked");
    CHECK(repacked >= 7 * int(hp.n_layer) / 2);
    // Nothing else is read through the file's pages but the experts, the
    // untied token embedding and weights of three dimensions: norms, biases
    // and small projections are copied too.
    for (const Tensor& t : model->weights()) {
        const bool stays = t.name.find("_exps") != std::string::npos || t.name == "token_embd.weight" || t.ne[2] != 1;
        INFO(what << ": " << t.name);
        CHECK(in_mapped_file(*model, t) == stays);
    }

    const std::vector<int32_t> toks = {1, 5, 9, 2, 33, 63, 0, 7, 7, 12};
    const std::vector<float> want = logits_of(plain, plain_cpu, toks, false);
    float range = 0;
    for (float v : want) range = std::max(range, std::abs(v));
    for (bool one_by_one : {false, true}) {
        const std::vector<float> got = logits_of(model, cpu, toks, one_by_one);
        REQUIRE(got.size() == want.size());
        float worst = 0;
        for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
        MESSAGE(what << (one_by_one ? " one by one" : " batch") << ": max |repacked - file layout| = " << worst
                     << " of range " << range);
        // Only the order of float additions differs.
        CHECK(worst <= 1e-4f * range);
    }
}

// m rows of k random values quantized to `type`.
std::vector<uint8_t> quantized_rows(DType type, int64_t k, int64_t m, uint32_t seed) {
    std::vector<uint8_t> bytes(dtype_row_bytes(type, k) * size_t(m));
    const std::vector<float> values = test::random_floats(size_t(k * m), seed, 0.1f);
    quant_traits(type)->from_float(values.data(), bytes.data(), k * m);
    return bytes;
}

// A 2-D weight of `type` over `data`, as a model holds one from its mapped file.
Tensor weight_over(DType type, int64_t k, int64_t m, void* data, Buffer* buffer) {
    Tensor w;
    const int64_t ne[2] = {k, m};
    tensor_set_shape(w, type, ne, 2);
    w.data = data;
    w.buffer = buffer;
    w.flags |= kTensorWeight;
    return w;
}

}  // namespace

TEST_CASE("repacked weights: a dense Q4_0 model gives the logits of the file's layout") {
    check_repacked_model(test::tiny_dense_hparams(Arch::Qwen2), "qwen2 q4_0");
}

TEST_CASE("repacked weights: deepseek2 Q4_0 repacks dense and shared-expert weights, never the experts") {
    check_repacked_model(test::tiny_deepseek2_hparams(), "deepseek2 q4_0");
}

TEST_CASE("repacked weights: only mul_mat's weight operand accepts them") {
    const int64_t k = 64, m = 16;
    std::vector<uint8_t> bytes = quantized_rows(DType::Q4_0, k, m, 3);

    CpuBackend cpu(CpuBackendOptions{1, std::nullopt});
    auto wrapped = cpu.wrap_host_memory(bytes.data(), bytes.size());
    Tensor w = weight_over(DType::Q4_0, k, m, bytes.data(), wrapped.get());
    auto own = cpu.adopt_weight(w, WeightReaders::MulMatOnly);
    REQUIRE(own != nullptr);
    CHECK((w.flags & kTensorRepacked) != 0);
    CHECK(w.data != static_cast<void*>(bytes.data()));
    CHECK(cpu.adopt_weight(w, WeightReaders::MulMatOnly) == nullptr);  // once only

    std::vector<uint8_t> back(bytes.size());
    unpack_rows(DType::Q4_0, k, m, w.data, back.data());
    CHECK(back == bytes);

    Graph g;
    Tensor* x = g.new_input(DType::F32, {k, 3});
    Tensor* ids = g.new_input(DType::I32, {2});
    CHECK(cpu.supports_op(*g.mul_mat(&w, x)));
    CHECK_FALSE(cpu.supports_op(*g.get_rows(&w, ids)));
    // ...which the same weight in the file's layout supports.
    Tensor file_layout = w;
    file_layout.flags = kTensorWeight;
    file_layout.data = bytes.data();
    CHECK(cpu.supports_op(*g.get_rows(&file_layout, ids)));
    CHECK(cpu.supports_op(*g.mul_mat(g.view(&file_layout, {k, m / 2}, {w.nb[1]}, 0), x)));
    Tensor* half = g.view(&w, {k, m / 2}, {w.nb[1]}, 0);
    CHECK_FALSE(cpu.supports_op(*half));
    CHECK_FALSE(cpu.supports_op(*g.mul_mat(half, x)));

    // A weight whose rows do not fill whole groups stays where it is.
    Tensor odd = w;
    odd.flags = kTensorWeight;
    odd.data = bytes.data();
    odd.ne[1] = m - 1;
    CHECK(cpu.adopt_weight(odd, WeightReaders::MulMatOnly) == nullptr);
    CpuBackendOptions off{1, std::nullopt};
    off.adopt_weights = false;
    CpuBackend plain_cpu(off);
    Tensor again = odd;
    again.ne[1] = m;
    CHECK(plain_cpu.adopt_weight(again, WeightReaders::MulMatOnly) == nullptr);
}

TEST_CASE("adopted weights: other types are copied as they are, small ones too") {
    // Q8_0 has a repacked layout, but only Q4_0 and Q5_0 are repacked at load.
    const int64_t k = 2048, big_m = 1000;  // 2176 bytes a row: 2.08 MiB
    const size_t row_bytes = dtype_row_bytes(DType::Q8_0, k);
    REQUIRE(row_bytes * size_t(big_m) >= kHugePageBytes);
    std::vector<uint8_t> bytes = quantized_rows(DType::Q8_0, k, big_m, 5);

    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto wrapped = cpu.wrap_host_memory(bytes.data(), bytes.size());
    Tensor w = weight_over(DType::Q8_0, k, big_m, bytes.data(), wrapped.get());
    auto own = cpu.adopt_weight(w, WeightReaders::MulMatOnly);
    REQUIRE(own != nullptr);
    CHECK((w.flags & kTensorRepacked) == 0);
    CHECK(w.buffer == own.get());
    CHECK(w.buffer->is_host());
    CHECK(w.data != static_cast<void*>(bytes.data()));
    CHECK(w.nb[1] == row_bytes);
    CHECK(std::memcmp(w.data, bytes.data(), bytes.size()) == 0);
    CHECK(cpu.adopt_weight(w, WeightReaders::MulMatOnly) == nullptr);  // once only
    // In the file's layout still: every op reads it.
    Graph g;
    Tensor* ids = g.new_input(DType::I32, {2});
    CHECK(cpu.supports_op(*g.get_rows(&w, ids)));

    // Rows further apart than their size come out contiguous.
    const size_t pad = 64;
    std::vector<uint8_t> padded((row_bytes + pad) * size_t(big_m), 0xee);
    for (int64_t r = 0; r < big_m; ++r)
        std::memcpy(padded.data() + size_t(r) * (row_bytes + pad), bytes.data() + size_t(r) * row_bytes, row_bytes);
    auto wrapped_padded = cpu.wrap_host_memory(padded.data(), padded.size());
    Tensor spaced = weight_over(DType::Q8_0, k, big_m, padded.data(), wrapped_padded.get());
    spaced.nb[1] = row_bytes + pad;
    spaced.nb[2] = spaced.nb[3] = spaced.nb[1] * size_t(big_m);
    auto own_spaced = cpu.adopt_weight(spaced, WeightReaders::MulMatOnly);
    REQUIRE(own_spaced != nullptr);
    CHECK(spaced.nb[1] == row_bytes);
    CHECK(std::memcmp(spaced.data, bytes.data(), bytes.size()) == 0);

    // Smaller than a huge page, and a norm's weight (read by mul): copied as well.
    Tensor small = weight_over(DType::Q8_0, k, int64_t(kHugePageBytes / row_bytes) - 1, bytes.data(), wrapped.get());
    auto own_small = cpu.adopt_weight(small, WeightReaders::MulMatOnly);
    REQUIRE(own_small != nullptr);
    CHECK(small.data != static_cast<void*>(bytes.data()));
    CHECK(std::memcmp(small.data, bytes.data(), small.nbytes()) == 0);
    std::vector<float> norm_values(64);
    for (size_t i = 0; i < norm_values.size(); ++i) norm_values[i] = 0.5f + float(i);
    auto wrapped_norm = cpu.wrap_host_memory(norm_values.data(), sizeof(float) * norm_values.size());
    Tensor norm = weight_over(DType::F32, 64, 1, norm_values.data(), wrapped_norm.get());
    auto own_norm = cpu.adopt_weight(norm, WeightReaders::NotMulMat);
    REQUIRE(own_norm != nullptr);
    CHECK((norm.flags & kTensorRepacked) == 0);
    CHECK(std::memcmp(norm.data, norm_values.data(), sizeof(float) * norm_values.size()) == 0);
    // A Q4_0 weight some other op reads: copied in the file's layout, never repacked.
    std::vector<uint8_t> q4 = quantized_rows(DType::Q4_0, 256, 16, 9);
    auto wrapped_q4 = cpu.wrap_host_memory(q4.data(), q4.size());
    Tensor other = weight_over(DType::Q4_0, 256, 16, q4.data(), wrapped_q4.get());
    auto own_other = cpu.adopt_weight(other, WeightReaders::NotMulMat);
    REQUIRE(own_other != nullptr);
    CHECK((other.flags & kTensorRepacked) == 0);
    CHECK(std::memcmp(other.data, q4.data(), q4.size()) == 0);
}

// A token embedding tied to the output (no output.weight) is read whole by
// decode's last mul_mat, and by get_rows: it is copied (onto huge pages when
// it fills one), never repacked (get_rows reads the file's layout only).
TEST_CASE("adopted weights: a tied token embedding is copied in the file's layout and read by both ops") {
    for (DType type : {DType::Q8_0, DType::Q4_0}) {
        // Vocabularies whose embedding is just over 2 MiB at 64 columns.
        HParams hp = test::tiny_dense_hparams(Arch::Qwen2, type == DType::Q8_0 ? 32768 : 65536);
        hp.tied_embeddings = true;
        test::TempDir dir;
        const std::string path = (dir / "tied.gguf").string();
        synth_write_model(path, hp, synth_type(type));

        CpuBackendOptions plain_options{2, std::nullopt};
        plain_options.adopt_weights = false;
        CpuBackend plain_cpu(plain_options), cpu(CpuBackendOptions{2, std::nullopt});
        auto plain = Model::load(path, plain_cpu);
        auto model = Model::load(path, cpu);
        REQUIRE(model->weight(TensorRole::Output) == nullptr);
        const Tensor* embd = model->weight(TensorRole::TokenEmbd);
        REQUIRE(embd != nullptr);
        REQUIRE(embd->type == type);
        INFO(std::string(dtype_name(type)));
        CHECK(embd->nbytes() >= kHugePageBytes);
        CHECK((embd->flags & kTensorRepacked) == 0);
        CHECK(!in_mapped_file(*model, *embd));  // the copy, not the mapped file
        CHECK(in_mapped_file(*plain, *plain->weight(TensorRole::TokenEmbd)));

        const std::vector<int32_t> toks = {1, 5, 9, 2, 33, 63, 0, 7, 7, 12, int32_t(hp.n_vocab - 1)};
        for (bool one_by_one : {false, true}) {
            const std::vector<float> want = logits_of(plain, plain_cpu, toks, one_by_one);
            const std::vector<float> got = logits_of(model, cpu, toks, one_by_one);
            REQUIRE(got.size() == want.size());
            float range = 0, worst = 0;
            for (size_t i = 0; i < got.size(); ++i) {
                range = std::max(range, std::abs(want[i]));
                worst = std::max(worst, std::abs(got[i] - want[i]));
            }
            INFO((one_by_one ? "one by one" : "batch") << ": max |adopted - mapped| = " << worst << " of " << range);
            // Q8_0: the same bytes through the same kernels; Q4_0: the other
            // weights repacked, so the order of float additions differs.
            CHECK(worst <= (type == DType::Q8_0 ? 0.0f : 1e-4f * range));
        }
    }
}

// mul_mat's and mul_mat_id's AMX path (bf16 tiles, quant/gemm.h) in a whole
// forward pass, on any CPU: the backend's table carries the tile product's
// scalar reference. A prompt of 40 tokens takes the path (32 or more rows);
// the logits differ from the plain tables' by the bf16 rounding of weights and
// activations only.
namespace {

void check_bf16_tiles_model(const HParams& hp, DType type, const std::string& what, const KernelTable& tiles) {
    test::TempDir dir;
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, synth_type(type));
    CpuBackendOptions options{2, std::nullopt};
    options.kernels = &tiles;
    CpuBackend plain_cpu(CpuBackendOptions{2, std::nullopt}), tiles_cpu(options);
    auto plain = Model::load(path, plain_cpu);
    auto model = Model::load(path, tiles_cpu);
    std::vector<int32_t> toks;
    for (int i = 0; i < 40; ++i) toks.push_back(int32_t((i * 37 + 11) % 64));
    const std::vector<float> want = logits_of(plain, plain_cpu, toks, false);
    const std::vector<float> got = logits_of(model, tiles_cpu, toks, false);
    REQUIRE(got.size() == want.size());
    float range = 0, worst = 0;
    double err = 0, ref = 0;
    for (float v : want) range = std::max(range, std::abs(v));
    for (size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::abs(got[i] - want[i]));
        err += double(got[i] - want[i]) * (got[i] - want[i]);
        ref += double(want[i]) * want[i];
    }
    INFO(what);
    MESSAGE(what << ": max |bf16 tiles - plain| = " << worst << " of range " << range << ", nmse " << err / ref);
    CHECK(worst > 0.0f);  // the tiles did run: bf16 rounds
    // bf16 keeps 8 significant bits: 2^-9 relative per weight and activation
    // value. Measured on these random tiny models: nmse 1.7e-4 to 3.3e-4 of the
    // logits, the worst of 2560 logits 1.5-1.8 % of their range.
    CHECK(err <= 1e-3 * ref);
    CHECK(worst <= 5e-2f * range);
}

}  // namespace

TEST_CASE("bf16 tiles: dense and deepseek2 prompts through mul_mat's AMX path stay close to the plain path") {
    // The tile product's reference, then the AMX kernel: on the CPU where it
    // has AMX, else over the emulated tile unit (tests/emulated.h).
    std::vector<std::pair<std::string, const KernelTable*>> tables = {{"reference tiles", &test::bf16_reference_table()}};
    if (isa_machine_best() >= Isa::Amx) tables.push_back({"amx", &kernel_table(Isa::Amx)});
    for (const test::EmulatedTable& e : test::emulated_tables())
        if (e.table.isa == Isa::Amx) tables.push_back({e.label, &e.table});
    if (tables.size() == 1) MESSAGE("SKIPPED: no AMX kernel, native or emulated, on this machine");
    for (const auto& [label, table] : tables) {
        REQUIRE(bool(table->gemm_bf16));
        check_bf16_tiles_model(test::tiny_dense_hparams(Arch::Qwen2), DType::Q4_0, "qwen2 q4_0, " + label, *table);
        check_bf16_tiles_model(test::tiny_dense_hparams(Arch::Llama), DType::Q8_0, "llama q8_0, " + label, *table);
        check_bf16_tiles_model(test::tiny_deepseek2_hparams(), DType::Q4_0, "deepseek2 q4_0, " + label, *table);
    }
    CHECK(test::amx_emulator_faults() == "");  // uses of the emulated tile unit the hardware would refuse
}
