#include "tests/test_util.h"
#include "tests/tiny_models.h"
#include "models/session.h"

#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>

namespace moelite::test {

namespace fs = std::filesystem;

fs::path source_dir() { return fs::path(MOELITE_SOURCE_DIR); }

fs::path fixtures_dir() {
    if (const char* env = std::getenv("MOELITE_FIXTURES"); env && *env) {
        return fs::is_directory(env) ? fs::path(env) : fs::path();
    }
    fs::path p = source_dir().parent_path() / "shared" / "fixtures";
    return fs::is_directory(p) ? p : fs::path();
}

fs::path moelite_binary() { return fs::path(MOELITE_BINARY); }

TempDir::TempDir() {
    std::string templ = (fs::temp_directory_path() / "moelite-test-XXXXXX").string();
    char* made = mkdtemp(templ.data());
    path_ = made ? fs::path(made) : fs::path();
}

TempDir::~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng) * scale;
    return v;
}

const KernelTable& bf16_reference_table() {
    static const KernelTable table = [] {
        KernelTable t = kernel_table(isa_active());
        t.gemm_bf16 = gemm_bf16_ref;
        return t;
    }();
    return table;
}

int run_command(const std::string& command, std::string* output) {
    std::string full = command + " 2>&1";
    FILE* pipe = popen(full.c_str(), "r");
    if (!pipe) return -1;
    char buf[4096];
    size_t got;
    std::string out;
    while ((got = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, got);
    int status = pclose(pipe);
    if (output) *output = out;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

HParams tiny_dense_hparams(Arch arch, int64_t n_vocab) {
    HParams hp;
    hp.arch = arch;
    hp.n_vocab = n_vocab;
    hp.n_ctx_train = 128;
    hp.n_embd = 64;
    hp.n_ff = 96;
    hp.n_layer = 2;
    hp.n_head = 4;
    hp.n_head_kv = 2;
    hp.head_dim_k = hp.head_dim_v = 16;
    hp.n_rot = 16;
    hp.rms_eps = 1e-6f;
    return hp;
}

HParams tiny_deepseek2_hparams() {
    HParams hp;
    hp.arch = Arch::Deepseek2;
    hp.n_vocab = 64;
    hp.n_ctx_train = 128;
    hp.n_embd = 64;
    hp.n_ff = 96;
    hp.n_layer = 3;
    hp.n_head = 4;
    hp.n_head_kv = 1;
    hp.kv_lora_rank = 32;
    hp.n_rot = 16;
    hp.head_dim_k_mla = 32 + 16;
    hp.head_dim_v_mla = 32;
    hp.head_dim_k = hp.kv_lora_rank + hp.n_rot;
    hp.head_dim_v = hp.kv_lora_rank;
    hp.n_expert = 16;
    hp.n_expert_used = 4;
    hp.n_expert_shared = 1;
    hp.n_ff_exp = 32;
    hp.n_layer_dense_lead = 1;
    hp.n_expert_groups = 1;
    hp.n_expert_groups_used = 1;
    hp.rms_eps = 1e-6f;
    return hp;
}

std::vector<float> eval_logits(Session& s, const std::vector<int32_t>& toks, bool one_by_one) {
    std::vector<float> all, row;
    if (!one_by_one) {
        s.eval(toks, true, &all);
        return all;
    }
    for (int32_t t : toks) {
        s.eval(std::span<const int32_t>(&t, 1), false, &row);
        all.insert(all.end(), row.begin(), row.end());
    }
    return all;
}

}  // namespace moelite::test
