// libFuzzer target for the safetensors reader (core/safetensors.h): every
// input is parsed from memory and, when valid, read through; see
// fuzz/safetensors_exercise.h. Seeds are in fuzz/corpus/safetensors; inputs
// that once crashed are replayed by tests/test_safetensors.cpp from
// tests/data/safetensors-crashes.
#include <cstddef>
#include <cstdint>

#include "core/log.h"
#include "fuzz/safetensors_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = [] {
        moelite::log_set_level(moelite::LogLevel::None);
        return true;
    }();
    (void)quiet;
    moelite::fuzz::exercise_safetensors(data, size);
    return 0;
}
