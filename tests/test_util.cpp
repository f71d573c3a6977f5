#include "tests/test_util.h"

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

}  // namespace moelite::test
