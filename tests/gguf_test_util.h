// Helpers for the GGUF tests: a raw byte builder for crafting files (valid or
// hostile) without going through GgufWriter, and a parse-and-report function.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"

namespace moelite::test {

// Little-endian GGUF bytes, appended field by field.
struct RawGguf {
    std::vector<uint8_t> b;

    RawGguf& raw(const void* p, size_t n) {
        const size_t old = b.size();
        b.resize(old + n);
        if (n) std::memcpy(b.data() + old, p, n);
        return *this;
    }
    RawGguf& u8(uint8_t v) { return raw(&v, 1); }
    RawGguf& u32(uint32_t v) { return raw(&v, 4); }
    RawGguf& u64(uint64_t v) { return raw(&v, 8); }
    RawGguf& i64(int64_t v) { return raw(&v, 8); }
    RawGguf& str(std::string_view s) {
        u64(s.size());
        return raw(s.data(), s.size());
    }
    RawGguf& zeros(size_t n) {
        b.insert(b.end(), n, 0);
        return *this;
    }
    RawGguf& pad(size_t align) { return zeros((align - b.size() % align) % align); }
    RawGguf& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        raw("GGUF", 4);
        u32(version);
        u64(n_tensors);
        return u64(n_kv);
    }
    RawGguf& kv_u32(std::string_view key, uint32_t v) {
        str(key);
        u32(4);
        return u32(v);
    }
    RawGguf& kv_string(std::string_view key, std::string_view v) {
        str(key);
        u32(8);
        return str(v);
    }
    RawGguf& tensor(std::string_view name, std::vector<int64_t> ne, uint32_t type, uint64_t offset) {
        str(name);
        u32(uint32_t(ne.size()));
        for (int64_t n : ne) i64(n);
        u32(type);
        return u64(offset);
    }
};

// Parses `bytes` from an exactly sized heap copy (so that a sanitizer sees any
// read past the end); returns "" on success or the error message.
inline std::string gguf_parse_error(const uint8_t* data, size_t size, const std::string& name = "crafted.gguf") {
    std::unique_ptr<uint8_t[]> copy(new uint8_t[size ? size : 1]);
    if (size) std::memcpy(copy.get(), data, size);
    try {
        auto f = GgufFile::from_memory(copy.get(), size, name);
        // Touch every tensor's range, as a model loader would.
        for (const GgufTensorInfo& t : f->tensors()) {
            if (t.data < copy.get() || t.data + t.nbytes > copy.get() + size) return "<tensor out of bounds>";
            volatile uint8_t sink = 0;
            for (size_t i = 0; i < t.nbytes; i += 4096) sink = sink ^ t.data[i];
            if (t.nbytes) sink = sink ^ t.data[t.nbytes - 1];
        }
        return std::string();
    } catch (const Error& e) {
        return e.what();
    }
}

inline std::string gguf_parse_error(const std::vector<uint8_t>& bytes, const std::string& name = "crafted.gguf") {
    return gguf_parse_error(bytes.data(), bytes.size(), name);
}

}  // namespace moelite::test
