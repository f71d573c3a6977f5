// libFuzzer target for the GGUF reader: parses the input from memory, and on
// success touches every metadata value and the first and last byte of every
// tensor's data, so that AddressSanitizer sees any range the reader got wrong.
// Seeds: fuzz/corpus/gguf (small files made by GgufWriter).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/gguf.h"

using namespace moelite;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // An exactly sized copy: libFuzzer's buffer is exact too, but this keeps
    // the target honest if that ever changes.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[size ? size : 1]);
    if (size) std::memcpy(copy.get(), data, size);
    try {
        auto f = GgufFile::from_memory(copy.get(), size, "fuzz.gguf");
        size_t sink = f->alignment() + f->data_offset() + f->version();
        for (const GgufKV& kv : f->metadata()) {
            sink += kv.key.size() + kv.value.size() + kv.value.to_string().size();
            if (f->find(kv.key) != &kv.value) __builtin_trap();
        }
        for (const GgufTensorInfo& t : f->tensors()) {
            if (t.nbytes == 0) __builtin_trap();  // dims are positive, so no tensor is empty
            if (t.data < copy.get() || t.data + t.nbytes > copy.get() + size) __builtin_trap();
            sink += t.data[0] + t.data[t.nbytes - 1];
            if (f->find_tensor(t.name) != &t) __builtin_trap();
            Tensor view;
            gguf_tensor_view(t, view);
            if (view.nbytes() != t.nbytes) __builtin_trap();
        }
        // Getters on whatever keys exist must either work or throw Error.
        for (const char* key : {"general.architecture", "general.alignment", "tokenizer.ggml.tokens"}) {
            try {
                sink += f->get_u32(key);
            } catch (const Error&) {
            }
            try {
                sink += f->get_string(key).size();
            } catch (const Error&) {
            }
            try {
                sink += f->get_int_array(key).size();
            } catch (const Error&) {
            }
        }
        volatile size_t keep = sink;
        (void)keep;
    } catch (const Error&) {
        // a clean rejection
    }
    return 0;
}
