// The converter's two entry points and the streaming loop they share (see
// convert/converter.h).
#include "convert/converter.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include "convert/generation_config.h"
#include "convert/hf_config.h"
#include "convert/tensor_map.h"
#include "convert/tensor_source.h"
#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "models/chat_template.h"
#include "models/gguf_meta.h"
#include "models/model.h"
#include "models/tokenizer.h"
#include "quant/quant.h"

namespace moelite {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// f32 elements a thread produces and quantizes at a time (256 KB).
constexpr int64_t kScratchFloats = int64_t(1) << 16;

struct OutTensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    std::unique_ptr<RowSource> source;
};

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs fn(begin, end) over [0, units) split into `threads` contiguous parts;
// the first exception thrown by any part is rethrown here.
template <class Fn>
void parallel_ranges(int threads, int64_t units, Fn fn) {
    if (threads <= 1 || units <= 1) {
        fn(int64_t(0), units);
        return;
    }
    const int n = int(std::min<int64_t>(threads, units));
    const int64_t per = (units + n - 1) / n;
    std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
    std::vector<std::thread> workers;
    auto run = [&](int t) {
        const int64_t b = t * per, e = std::min(units, b + per);
        try {
            if (b < e) fn(b, e);
        } catch (...) {
            errors[size_t(t)] = std::current_exception();
        }
    };
    for (int t = 1; t < n; ++t) workers.emplace_back(run, t);
    run(0);
    for (auto& w : workers) w.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

class Streamer {
  public:
    Streamer(GgufWriter& writer, const ConvertOptions& options, ConvertReport& report, size_t n_tensors,
             uint64_t bytes_total, std::string origin)
        : writer_(writer), options_(options), report_(report), t0_(Clock::now()), origin_(std::move(origin)) {
        threads_ = options.n_threads > 0 ? options.n_threads : int(std::max(1u, std::thread::hardware_concurrency()));
        progress_.tensors_total = n_tensors;
        progress_.bytes_total = bytes_total;
    }

    void write(const OutTensor& t) {
        const RowSource& src = *t.source;
        progress_.tensor = t.name;
        const int64_t rows = src.rows(), len = src.row_len(), g = src.granule();
        MOELITE_ASSERT(rows * len == element_count(t.ne) && rows % g == 0);
        const size_t row_bytes = dtype_row_bytes(t.type, len);
        const double in_per_row = double(src.input_bytes()) / double(rows);

        // Rows per chunk: as many granules as fit in chunk_bytes of f32, at least one.
        const int64_t granule_bytes = g * len * int64_t(sizeof(float));
        const int64_t chunk_rows =
            std::max<int64_t>(1, int64_t(options_.chunk_bytes) / std::max<int64_t>(1, granule_bytes)) * g;

        if (const uint8_t* raw = src.raw_bytes(t.type)) {
            for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
                check_cancel();
                const int64_t r1 = std::min(rows, r0 + chunk_rows);
                check_finite_raw(t, raw + size_t(r0) * row_bytes, size_t(r1 - r0) * row_bytes);
                writer_.append_tensor_data(raw + size_t(r0) * row_bytes, size_t(r1 - r0) * row_bytes);
                src.release(r0, r1);
                advance(in_per_row * double(r1 - r0), size_t(r1 - r0) * row_bytes);
            }
            finish_tensor(t);
            return;
        }

        const QuantTraits* traits = quant_traits(t.type);
        MOELITE_ASSERT(traits && traits->from_float);
        const bool direct_f32 = t.type == DType::F32;  // produce straight into the output buffer
        if (out_.size() < size_t(std::min(rows, chunk_rows)) * row_bytes)
            out_.resize(size_t(std::min(rows, chunk_rows)) * row_bytes);
        // Each thread produces and quantizes its rows a few hundred KB at a time,
        // so the f32 rows are still in cache when they are quantized.
        const int64_t sub_rows = std::max<int64_t>(1, kScratchFloats / std::max<int64_t>(1, g * len)) * g;

        for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
            check_cancel();
            const int64_t r1 = std::min(rows, r0 + chunk_rows);
            const int64_t units = (r1 - r0) / g;
            // Small chunks are not worth waking threads for.
            const int threads = (r1 - r0) * len < (int64_t(1) << 16) ? 1 : threads_;
            parallel_ranges(threads, units, [&](int64_t u0, int64_t u1) {
                std::vector<float> scratch;
                for (int64_t a = r0 + u0 * g, end = r0 + u1 * g; a < end; a += sub_rows) {
                    const int64_t b = std::min(end, a + sub_rows);
                    uint8_t* dst = out_.data() + size_t(a - r0) * row_bytes;
                    if (direct_f32) {
                        src.produce(a, b, reinterpret_cast<float*>(dst));
                        check_finite(t, reinterpret_cast<const float*>(dst), (b - a) * len);
                        continue;
                    }
                    scratch.resize(size_t((b - a) * len));
                    src.produce(a, b, scratch.data());
                    check_finite(t, scratch.data(), (b - a) * len);
                    traits->from_float(scratch.data(), dst, (b - a) * len);
                }
            });
            writer_.append_tensor_data(out_.data(), size_t(r1 - r0) * row_bytes);
            src.release(r0, r1);
            advance(in_per_row * double(r1 - r0), size_t(r1 - r0) * row_bytes);
        }
        finish_tensor(t);
    }

    void done() {
        report_.seconds = seconds_since(t0_);
        report_.bytes_read = uint64_t(bytes_read_ + 0.5);
        progress_.seconds = report_.seconds;
        progress_.bytes_read = progress_.bytes_total;
        progress_.tensor.clear();
        if (options_.progress) options_.progress(progress_);
    }

  private:
    // A NaN or infinite weight turns every logit into NaN: such a checkpoint
    // is refused rather than converted.
    void check_finite(const OutTensor& t, const float* v, int64_t n) const {
        bool finite = true;
        for (int64_t i = 0; i < n; ++i) finite &= std::isfinite(v[i]);
        if (!finite) non_finite(t);
    }
    // The same on data copied as it is, where its type shows it: F32, F16 and
    // BF16 by their exponent bits (all ones: infinite or NaN).
    void check_finite_raw(const OutTensor& t, const uint8_t* p, size_t bytes) const {
        bool finite = true;
        if (t.type == DType::F32) {
            for (size_t i = 0; i + 4 <= bytes; i += 4) {
                uint32_t v;
                std::memcpy(&v, p + i, 4);
                finite &= (v & 0x7f800000u) != 0x7f800000u;
            }
        } else if (t.type == DType::F16 || t.type == DType::BF16) {
            const uint16_t mask = t.type == DType::F16 ? 0x7c00 : 0x7f80;
            for (size_t i = 0; i + 2 <= bytes; i += 2) {
                uint16_t v;
                std::memcpy(&v, p + i, 2);
                finite &= (v & mask) != mask;
            }
        }
        if (!finite) non_finite(t);
    }
    [[noreturn]] void non_finite(const OutTensor& t) const {
        fail("%s: tensor '%s' holds NaN or infinite values: the checkpoint is corrupt", origin_.c_str(),
             t.name.c_str());
    }

    static int64_t element_count(const std::vector<int64_t>& ne) {
        int64_t n = 1;
        for (int64_t d : ne) n *= d;
        return n;
    }

    void check_cancel() const {
        if (options_.cancel && options_.cancel->load()) fail("%s: interrupted", writer_.path().c_str());
    }

    void advance(double in_bytes, size_t out_bytes) {
        bytes_read_ += in_bytes;
        report_.bytes_written += out_bytes;
        progress_.bytes_read = uint64_t(bytes_read_ + 0.5);
        progress_.bytes_written = report_.bytes_written;
        progress_.seconds = seconds_since(t0_);
        if (options_.progress) options_.progress(progress_);
    }

    void finish_tensor(const OutTensor& t) {
        ++progress_.tensors_done;
        report_.tensors_by_type[dtype_name(t.type)] += 1;
        ++report_.n_tensors;
        progress_.seconds = seconds_since(t0_);
        if (options_.progress) options_.progress(progress_);
    }

    GgufWriter& writer_;
    const ConvertOptions& options_;
    ConvertReport& report_;
    Clock::time_point t0_;
    int threads_ = 1;
    ConvertProgress progress_;
    double bytes_read_ = 0;
    std::vector<uint8_t> out_;  // one chunk of the output tensor
    std::string origin_;        // the checkpoint or file converted, for messages
};

void write_all(GgufWriter& writer, std::vector<OutTensor>& tensors, const ConvertOptions& options,
               ConvertReport& report, const std::string& origin,
               const std::function<void(const std::string&)>& verify = nullptr) {
    uint64_t total = 0;
    for (const OutTensor& t : tensors) total += t.source->input_bytes();
    for (const OutTensor& t : tensors) writer.add_tensor(t.name, t.type, t.ne);
    Streamer streamer(writer, options, report, tensors.size(), total, origin);
    for (const OutTensor& t : tensors) streamer.write(t);
    writer.finish(verify);
    streamer.done();
}

void note(ConvertReport& report, std::string text) {
    MOELITE_LOG_INFO("%s", text.c_str());
    report.notes.push_back(std::move(text));
}

void note_unmatched_overrides(const QuantRecipe& recipe, const std::vector<OutTensor>& tensors, ConvertReport& report) {
    for (const RecipeOverride& o : recipe.overrides) {
        bool hit = false;
        for (const OutTensor& t : tensors) hit = hit || std::regex_search(t.name, o.regex);
        if (!hit) note(report, strprintf("--override '%s' matches no tensor", o.pattern.c_str()));
    }
}

// The tokenizer files of a checkpoint as GGUF metadata (models/tokenizer.h
// reads them): the vocabulary padded with "[PADn]" up to the model's
// vocab_size, as llama.cpp's converter pads. A tokenizer with ids past
// vocab_size is refused: the model has no embedding row for them.
// config.json's bos/eos ids fill in what tokenizer_config.json leaves unset,
// and chat_template.jinja stands in for a missing chat_template.
TokenizerMetadata tokenizer_metadata_of(const std::string& dir, const HfConfig& config) {
    const fs::path json_path = fs::path(dir) / "tokenizer.json";
    const fs::path config_path = fs::path(dir) / "tokenizer_config.json";
    const Tokenizer tok =
        Tokenizer::from_hf_files(json_path.string(), fs::exists(config_path) ? config_path.string() : std::string());
    const int64_t n_vocab = config.hp.n_vocab;
    if (int64_t(tok.vocab_size()) > n_vocab)
        fail(
            "%s: the tokenizer has ids up to %lld, past the model's vocab_size %lld (%s): the model has no "
            "embedding for them",
            json_path.c_str(), (long long)tok.vocab_size() - 1, (long long)n_vocab, config.path.c_str());
    TokenizerMetadata m = tok.to_metadata(size_t(n_vocab));
    MOELITE_ASSERT(int64_t(m.tokens.size()) == n_vocab);
    if (m.bos_id < 0 && config.bos_token_id && *config.bos_token_id >= 0 && *config.bos_token_id < n_vocab)
        m.bos_id = int32_t(*config.bos_token_id);
    if (m.eos_id < 0 && config.eos_token_id && *config.eos_token_id >= 0 && *config.eos_token_id < n_vocab)
        m.eos_id = int32_t(*config.eos_token_id);
    const fs::path jinja = fs::path(dir) / "chat_template.jinja";
    if (m.chat_template.empty() && fs::exists(jinja)) {
        std::ifstream in(jinja, std::ios::binary);
        m.chat_template.assign(std::istreambuf_iterator<char>(in), {});
    }
    if (!m.chat_template.empty()) {
        try {
            ChatTemplate check(m.chat_template);
        } catch (const Error& e) {
            // Written as it is (llama.cpp's converter does not look either):
            // the model still completes text; chat will refuse it.
            MOELITE_LOG_WARN("%s: %s; written as it is", dir.c_str(), e.what());
        }
    }
    return m;
}

std::string model_name_of(const std::string& dir) {
    std::error_code ec;
    fs::path p = fs::absolute(fs::path(dir), ec).lexically_normal();  // "." and "x/" name their directory
    while (!p.empty() && p.filename().empty() && p != p.root_path()) p = p.parent_path();
    return p.filename().string();
}

}  // namespace

ConvertReport convert_checkpoint(const std::string& hf_dir, const std::string& out_path,
                                 const ConvertOptions& options) {
    if (!fs::is_directory(hf_dir)) fail("%s: not a directory (expected a Hugging Face checkpoint)", hf_dir.c_str());
    const HfConfig config = hf_config_load((fs::path(hf_dir) / "config.json").string());
    SafetensorsCheckpoint checkpoint(hf_dir);
    // Every layer has tensors: more layers than the checkpoint's tensors is a
    // lie, refused before anything is sized by it.
    if (config.n_layer_all > int64_t(checkpoint.names().size()))
        fail("%s: num_hidden_layers %lld is more than the checkpoint's %zu tensors", config.path.c_str(),
             (long long)config.n_layer_all, checkpoint.names().size());
    // None of the checkpoint's files is overwritten (an earlier output beside
    // them may be).
    std::error_code ec;
    if (fs::exists(out_path, ec))
        for (const auto& entry : fs::directory_iterator(hf_dir, ec)) {
            const std::string ext = entry.path().extension().string();
            if ((ext == ".json" || ext == ".safetensors" || ext == ".jinja") &&
                fs::equivalent(entry.path(), out_path, ec))
                fail("%s: the output would overwrite %s of the checkpoint", out_path.c_str(), entry.path().c_str());
        }
    const ConvertPlan plan = plan_conversion(config, checkpoint.names(), hf_dir);

    ConvertReport report;
    report.output = out_path;
    if (!plan.skipped.empty())
        note(report, strprintf("skipped %zu source tensors (multi-token prediction layers, tied lm_head)",
                               plan.skipped.size()));

    const bool has_tokenizer = fs::exists(fs::path(hf_dir) / "tokenizer.json");
    TokenizerMetadata tokenizer;
    if (has_tokenizer) {
        tokenizer = tokenizer_metadata_of(hf_dir, config);
        const int64_t n_real = int64_t(std::count_if(tokenizer.token_types.begin(), tokenizer.token_types.end(),
                                                     [](int32_t t) { return t != int32_t(TokenType::Unused); }));
        if (n_real < config.hp.n_vocab)
            note(report, strprintf("tokenizer: %lld tokens padded to the model's vocab_size %lld", (long long)n_real,
                                   (long long)config.hp.n_vocab));
    } else {
        note(report, "no tokenizer.json: written without a vocabulary (tokenizer.ggml.model = \"none\")");
    }

    const QuantRecipe& recipe = options.recipe;
    RecipeModel model{config.hp.arch, config.hp.n_layer, config.hp.n_head, config.hp.n_head_kv,
                      config.hp.tied_embeddings};
    std::vector<OutTensor> tensors;
    for (const ConvertItem& item : plan.items) {
        OutTensor t;
        t.name = item.spec.name;
        t.ne = item.spec.shape;
        TypeChoice c = recipe_choose(recipe, model, t.name, t.ne);
        t.type = c.type;
        if (!c.note.empty()) note(report, c.note);
        t.source = make_hf_source(item, config, checkpoint);
        tensors.push_back(std::move(t));
    }
    note_unmatched_overrides(recipe, tensors, report);

    GgufWriter writer(out_path);
    ModelMetadataExtras extras;
    extras.name = model_name_of(hf_dir);
    extras.file_type = uint32_t(recipe.file_type);
    extras.vocab_less = !has_tokenizer;
    for (GgufKV& kv : model_metadata(config.hp, extras))
        writer.add(std::move(kv.key), std::move(kv.value));
    std::vector<std::string> sampling_notes;
    for (GgufKV& kv : sampling_metadata_of_dir(hf_dir, &sampling_notes))
        writer.add(std::move(kv.key), std::move(kv.value));
    for (std::string& n : sampling_notes) note(report, std::move(n));
    if (has_tokenizer) {
        write_tokenizer_metadata(writer, tokenizer);
    } else {
        writer.add("tokenizer.ggml.model", GgufValue("none"));
    }
    // The loader's checks of hyper-parameters and vocabulary, on the written
    // file before it takes the output's name: a checkpoint whose settings the
    // runtime would refuse (an rms epsilon of 0, a rope theta that overflows)
    // is refused here, not converted into a file that cannot be loaded.
    write_all(writer, tensors, options, report, hf_dir, [&](const std::string& temp_path) {
        try {
            auto written = GgufFile::open(temp_path);
            (void)hparams_from_gguf(*written);
            (void)tokenizer_from_gguf(*written);
        } catch (const Error& e) {
            fail("%s: the converted model would not load: %s", hf_dir.c_str(), e.what());
        }
    });
    return report;
}

ConvertReport quantize_gguf(const std::string& in_path, const std::string& out_path, const ConvertOptions& options) {
    if (fs::exists(out_path) && fs::exists(in_path) && fs::equivalent(in_path, out_path))
        fail("%s: the output would overwrite the input", out_path.c_str());
    const std::unique_ptr<GgufFile> in = GgufFile::open(in_path);
    ConvertReport report;
    report.output = out_path;

    const std::string arch = in->opt_string("general.architecture").value_or("");
    RecipeModel model;
    model.arch = arch_from_name(arch);
    auto arch_u64 = [&](const char* key) -> int64_t {
        const std::optional<uint64_t> v = in->opt_u64(arch + "." + key);
        return v ? int64_t(std::min<uint64_t>(*v, uint64_t(1) << 31)) : 0;
    };
    model.n_layer = arch_u64("block_count");
    model.n_head = arch_u64("attention.head_count");
    model.n_head_kv = in->has(arch + ".attention.head_count_kv") ? arch_u64("attention.head_count_kv") : model.n_head;
    model.tied_embeddings = in->find_tensor("output.weight") == nullptr;

    const QuantRecipe& recipe = options.recipe;
    std::vector<OutTensor> tensors;
    bool requantized = false;
    for (const GgufTensorInfo& info : in->tensors()) {
        OutTensor t;
        t.name = info.name;
        t.ne.assign(info.ne, info.ne + info.n_dims);
        if (tensor_is_quantizable(t.name, info.n_dims)) {
            TypeChoice c = recipe_choose(recipe, model, t.name, t.ne);
            t.type = c.type;
            if (!c.note.empty()) note(report, c.note);
        } else {
            t.type = info.type;  // norms, biases, the router: kept as they are
        }
        requantized = requantized || (dtype_is_quantized(info.type) && t.type != info.type);
        t.source = make_gguf_source(*in, info, t.type);
        tensors.push_back(std::move(t));
    }
    if (requantized)
        note(report, "some tensors were already quantized: re-quantizing them compounds the rounding error");
    note_unmatched_overrides(recipe, tensors, report);

    GgufWriter writer(out_path);
    bool has_file_type = false, has_qv = false;
    for (const GgufKV& kv : in->metadata()) {
        if (kv.key == "general.file_type") {
            writer.add(kv.key, GgufValue(uint32_t(recipe.file_type)));
            has_file_type = true;
        } else if (kv.key == "general.quantization_version") {
            writer.add(kv.key, GgufValue(uint32_t(2)));
            has_qv = true;
        } else {
            writer.add(kv.key, kv.value);
        }
    }
    if (!has_file_type) writer.add("general.file_type", GgufValue(uint32_t(recipe.file_type)));
    if (!has_qv) writer.add("general.quantization_version", GgufValue(uint32_t(2)));
    write_all(writer, tensors, options, report, in_path);
    return report;
}

}  // namespace moelite
