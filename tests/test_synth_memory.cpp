// Memory of a memory-mapped MoE model: the /proc/self/status parse behind
// `moelite run --memory`, the weight bytes a run read (models/weight_use.h,
// checked against the file's tensor table), and the property issue 5 asks
// for: after the file is dropped from the page cache, decoding one token reads
// the chosen experts' slices and leaves the other experts' pages on disk
// (mincore). Skips, saying so, where the filesystem keeps the pages anyway.
// And the commands that report it: `moelite run --memory --json`,
// `moelite pagecache --evict`.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "backends/cpu/cpu_backend.h"
#include "core/gguf.h"
#include "core/mmap.h"
#include "core/process_memory.h"
#include "models/model.h"
#include "models/session.h"
#include "models/synth.h"
#include "models/weight_use.h"
#include "tests/test_util.h"
#include "tests/tiny_models.h"

using namespace moelite;
using namespace moelite::test;

namespace {

// One MoE layer whose expert slices span hundreds of pages each (up/gate:
// 2048 rows of 512 in Q8_0, 1.1 MB; down the same), so that read-ahead around
// the chosen slices cannot reach the middle of an unchosen one.
HParams wide_experts() {
    HParams hp = test::tiny_deepseek2_hparams();
    hp.n_ctx_train = 64;
    hp.n_embd = 512;
    hp.n_ff = 512;
    hp.n_layer = 1;
    hp.n_head = 2;
    hp.kv_lora_rank = 64;
    hp.n_rot = 32;
    hp.head_dim_k_mla = 32 + 32;
    hp.head_dim_v_mla = 32;
    hp.head_dim_k = hp.kv_lora_rank + hp.n_rot;
    hp.head_dim_v = hp.kv_lora_rank;
    hp.n_expert = 8;
    hp.n_expert_used = 2;
    hp.n_ff_exp = 2048;
    hp.n_layer_dense_lead = 0;
    return hp;
}

}  // namespace

TEST_CASE("process memory: /proc/self/status lines are parsed to bytes") {
    const ProcessMemory m = parse_proc_status(
        "Name:\tmoelite\nVmPeak:\t  999 kB\nVmHWM:\t    4096 kB\nVmRSS:\t    3000 kB\nRssAnon:\t    1000 kB\n"
        "RssFile:\t    1990 kB\nRssShmem:\t 10 kB\nThreads:\t3\n");
    CHECK(m.vm_hwm == 4096 * 1024);
    CHECK(m.vm_rss == 3000 * 1024);
    CHECK(m.rss_anon == 1000 * 1024);
    CHECK(m.rss_file == 1990 * 1024);
    const ProcessMemory partial = parse_proc_status("VmRSS: 12 kB\nVmHWM: lots\nRssAnon: 5 MB");
    CHECK(partial.vm_rss == 12 * 1024);
    CHECK(partial.vm_hwm == -1);
    CHECK(partial.rss_anon == -1);
    CHECK(partial.rss_file == -1);
#ifdef __linux__
    const ProcessMemory self = process_memory();
    CHECK(self.vm_rss > 0);
    CHECK(self.vm_hwm >= self.vm_rss);
    CHECK(self.rss_anon + self.rss_file <= self.vm_rss);
#endif
}

TEST_CASE("weight use: dense weights whole, embedding rows of the tokens, chosen experts' slices") {
    TempDir dir;
    const HParams hp = wide_experts();
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, synth_type(DType::Q8_0));
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    Session s(Model::load(path, cpu), cpu);
    const std::vector<int32_t> toks = {5, 7, 5};
    s.eval(toks, false, nullptr);
    const ExpertStats& es = s.expert_stats();
    std::set<int64_t> chosen;
    for (int64_t e = 0; e < hp.n_expert; ++e)
        if (es.count(0, e)) chosen.insert(e);
    REQUIRE(!chosen.empty());

    // Independently, from the file's tensor table by name.
    auto f = GgufFile::open(path);
    size_t expected = 0;
    for (const auto& t : f->tensors()) {
        if (t.name == "token_embd.weight") {
            expected += t.nbytes / size_t(t.ne[1]) * 2;  // tokens 5 and 7
        } else if (t.name.find("_exps.") != std::string::npos) {
            expected += t.nbytes / size_t(hp.n_expert) * chosen.size();
        } else {
            expected += t.nbytes;
        }
    }
    const WeightUse u = weight_use(s.model(), es, s.tokens());
    CHECK(u.touched_bytes() == expected);
    CHECK(u.experts_chosen == int64_t(chosen.size()));
    CHECK(u.experts_total == hp.n_expert);
    CHECK(u.file_bytes == f->file_size());
    CHECK(u.touched_bytes() < u.weight_bytes);
}

namespace {

// Writes the model, drops it from the page cache, loads it (with `random`:
// advising random access), drops what loading read, decodes one token.
// nullopt when the filesystem keeps the file cached (the caller skips).
struct OneToken {
    std::shared_ptr<const Model> model;
    std::unique_ptr<Session> session;
};
std::optional<OneToken> decode_one_cold(const TempDir& dir, CpuBackend& cpu, bool random) {
    const HParams hp = wide_experts();
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, synth_type(DType::Q8_0));
    page_cache_evict(path);
    const size_t cached = page_cache_resident(path), size = std::filesystem::file_size(path);
    if (cached > size / 10) {
        MESSAGE("SKIPPED: the filesystem under " << dir.path().string() << " keeps " << cached << " of " << size
                                                 << " bytes cached after posix_fadvise(DONTNEED)");
        return std::nullopt;
    }
    OneToken r;
    r.model = Model::load(path, cpu);
    if (random) r.model->file().mapping()->advise_random(0, size);
    // Parsing the header read it with the kernel's read-around (8 MiB on
    // some machines: all of this file), before any advice could be given.
    page_cache_evict(path);
    r.session = std::make_unique<Session>(r.model, cpu);
    const std::vector<int32_t> toks = {9};
    r.session->eval(toks, false, nullptr);
    return r;
}

// Where each expert's slice of each expert stack lies in the file, and
// whether the router chose that expert.
struct Slice {
    std::string tensor;
    int64_t expert;
    bool chosen;
    size_t offset, bytes;
};
std::vector<Slice> expert_slices(const OneToken& run) {
    std::vector<Slice> out;
    const ExpertStats& es = run.session->expert_stats();
    for (TensorRole role : {TensorRole::FfnGateExps, TensorRole::FfnUpExps, TensorRole::FfnDownExps}) {
        const Tensor& t = *run.model->weight(role, 0);
        const size_t base = size_t(static_cast<const uint8_t*>(t.data) - run.model->file().mapping()->data());
        for (int64_t e = 0; e < es.n_expert(); ++e)
            out.push_back({t.name, e, es.count(0, e) > 0, base + size_t(e) * size_t(t.nb[2]), size_t(t.nb[2])});
    }
    return out;
}

}  // namespace

TEST_CASE("mmap: decoding one token maps only the chosen experts' pages into the process") {
    TempDir dir;
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto run = decode_one_cold(dir, cpu, false);
    if (!run) return;
    const MappedFile& map = *run->model->file().mapping();
    int64_t n_chosen = 0;
    for (const Slice& s : expert_slices(*run)) {
        CAPTURE(s.tensor);
        CAPTURE(s.expert);
        if (s.chosen) {
            ++n_chosen;
            CHECK(map.mapped_bytes(s.offset, s.bytes) == s.bytes);
        } else {
            // The kernel maps cached pages next to a fault (fault-around,
            // 64 KiB): an edge of a chosen neighbour's, never the middle.
            CHECK(map.mapped_bytes(s.offset + s.bytes / 2 - 8192, 16384) == 0);
            CHECK(map.mapped_bytes(s.offset, s.bytes) < s.bytes / 4);
        }
    }
    CHECK(n_chosen == 3 * wide_experts().n_expert_used);
}

TEST_CASE("mmap: with random-access advice the unchosen experts' pages are not even read from disk") {
    TempDir dir;
    CpuBackend cpu(CpuBackendOptions{2, std::nullopt});
    auto run = decode_one_cold(dir, cpu, true);
    if (!run) return;
    const MappedFile& map = *run->model->file().mapping();
    for (const Slice& s : expert_slices(*run)) {
        CAPTURE(s.tensor);
        CAPTURE(s.expert);
        const size_t cached = map.resident_bytes(s.offset, s.bytes);
        if (s.chosen) {
            CHECK(cached == s.bytes);
        } else {
            CHECK(cached <= 2 * 4096);  // at most the pages shared with a neighbour
        }
    }
}

TEST_CASE("moelite run --memory --json and moelite pagecache --evict report consistent figures") {
    TempDir dir;
    HParams hp = wide_experts();
    hp.n_vocab = 300;  // room for the byte-level tokenizer
    SynthOptions so = synth_type(DType::Q8_0);
    so.tokenizer = synth_demo_tokenizer();
    const std::string path = (dir / "m.gguf").string();
    synth_write_model(path, hp, so);
    const std::string bin = moelite_binary().string();

    std::string out;
    REQUIRE(run_command(bin + " pagecache --evict " + path, &out) == 0);
    CHECK(out.find(path + ": ") == 0);
    CHECK(out.find(" bytes in the page cache (") != std::string::npos);

    REQUIRE(run_command(bin + " run -m " + path + " -p hi -n 2 -t 2 --ignore-eos --memory --json 2>/dev/null", &out) ==
            0);
    const auto j = nlohmann::json::parse(out);
    const auto& m = j.at("memory");
    const auto file = m.at("file_bytes").get<int64_t>(), weights = m.at("weight_bytes").get<int64_t>();
    const auto touched = m.at("touched_bytes").get<int64_t>();
    CHECK(file == int64_t(std::filesystem::file_size(path)));
    CHECK(weights < file);
    CHECK(touched < weights);  // 2 of 8 experts per token, 3 or 4 tokens
    CHECK(touched == m.at("dense_bytes").get<int64_t>() + m.at("embedding_bytes").get<int64_t>() +
                         m.at("expert_bytes").get<int64_t>());
    CHECK(m.at("experts_total").get<int64_t>() == hp.n_expert);
    CHECK(m.at("experts_chosen").get<int64_t>() >= hp.n_expert_used);
    CHECK(m.at("vm_hwm").get<int64_t>() >= m.at("vm_rss").get<int64_t>());
    CHECK(m.at("rss_file").get<int64_t>() > 0);
    CHECK(m.at("rss_anon").get<int64_t>() > 0);
}

TEST_CASE("mmap: prefetch_mapped reads a range of an evicted file into the page cache") {
    TempDir dir;
    const std::string path = (dir / "data.bin").string();
    {
        std::vector<char> bytes(4 << 20, 'x');
        std::FILE* f = std::fopen(path.c_str(), "wb");
        REQUIRE(f);
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fclose(f);
    }
    page_cache_evict(path);
    MappedFile map(path);
    if (map.resident_bytes(0, map.size()) > map.size() / 10) {
        MESSAGE("SKIPPED: the filesystem under " << dir.path().string() << " ignores posix_fadvise(DONTNEED)");
        return;
    }
    const size_t offset = (1 << 20) + 100, bytes = 1 << 20;  // not page-aligned
    prefetch_mapped(map.data() + offset, bytes);
    for (int i = 0; i < 200 && map.resident_bytes(offset, bytes) < bytes; ++i)  // the read is asynchronous
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(map.resident_bytes(offset, bytes) == bytes);
    CHECK(map.mapped_bytes(0, map.size()) == 0);  // cached, not touched
}
