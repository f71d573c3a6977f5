// Helpers shared by the test files: where the source tree and ../shared
// fixtures are, temporary directories, and deterministic random data.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "quant/kernels.h"

namespace moelite::test {

// The repository root (compiled in).
std::filesystem::path source_dir();
// ../shared/fixtures, or the directory in $MOELITE_FIXTURES; empty when absent.
// Tests that need it call it through MOELITE_REQUIRE_FIXTURES, which skips
// with a visible message.
std::filesystem::path fixtures_dir();
// Path of the built `moelite` binary.
std::filesystem::path moelite_binary();

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// n floats from N(0, 1) * scale with a fixed seed.
std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f);

// Runs a shell command, returns its exit status; stdout+stderr go to *output.
// The active ISA's kernel table with the scalar reference as its bf16 tile
// product (quant/gemm.h): through CpuBackendOptions::kernels, mul_mat's and
// mul_mat_id's AMX path runs on any CPU.
const KernelTable& bf16_reference_table();

int run_command(const std::string& command, std::string* output);

}  // namespace moelite::test

// Skips the current test case, saying so, when the fixtures are not there.
#define MOELITE_REQUIRE_FIXTURES()                                                          \
    do {                                                                                    \
        if (::moelite::test::fixtures_dir().empty()) {                                      \
            MESSAGE("SKIPPED: ../shared/fixtures not found (set MOELITE_FIXTURES to run)"); \
            return;                                                                         \
        }                                                                                   \
    } while (0)
