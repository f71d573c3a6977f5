// GGUF reader: a bounds-checked cursor over the file image and the checks
// described in core/gguf.h. Every read goes through GgufParser::need(), which
// compares against the bytes left; counts read from the file are checked
// against those bytes before anything is allocated for them, so a lying
// header costs no more memory than the file itself.
#include "core/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/mmap.h"

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace moelite {

// Smallest encodings, used to reject counts the file cannot hold.
static constexpr size_t kMinKvBytes = 8 + 4 + 1;                  // key length, type, a one-byte value
static constexpr size_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, one dim, type, offset
// Largest general.alignment accepted: the format stores it as a u32.
static constexpr uint64_t kMaxAlignment = uint64_t(1) << 31;

class GgufParser {
public:
    explicit GgufParser(GgufFile& f) : f_(f), p_(f.base_), size_(f.size_) {}

    void parse() {
        parse_header();
        for (uint64_t i = 0; i < n_kv_; ++i) parse_kv(i);
        parse_alignment();
        for (uint64_t i = 0; i < n_tensors_; ++i) parse_tensor_info(i);
        place_tensors();
    }

private:
    // ---- errors and the cursor ----

    [[noreturn]] void error(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        va_list args;
        va_start(args, fmt);
        std::string msg = vstrprintf(fmt, args);
        va_end(args);
        if (where_.empty()) fail("%s: %s", f_.name_.c_str(), msg.c_str());
        fail("%s: %s: %s", f_.name_.c_str(), where_.c_str(), msg.c_str());
    }

    size_t left() const { return size_ - pos_; }

    void need(uint64_t n, const char* what) {
        if (n > left())
            error("truncated file: %s needs %llu bytes at offset %zu, but only %zu are left (file size %zu)", what,
                  (unsigned long long)n, pos_, left(), size_);
    }

    template <class T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    std::string read_string(const char* what) {
        const uint64_t n = read<uint64_t>(what);
        if (n > left())
            error("truncated file: %s of %llu bytes at offset %zu runs past the end (only %zu bytes left)", what,
                  (unsigned long long)n, pos_, left());
        std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
        pos_ += size_t(n);
        return s;
    }

    // ---- header ----

    void parse_header() {
        if (size_ < 4) error("not a GGUF file: only %zu bytes", size_);
        if (std::memcmp(p_, "GGUF", 4) != 0)
            error("not a GGUF file: bad magic %s (expected \"GGUF\")",
                  gguf_quote_string(std::string_view(reinterpret_cast<const char*>(p_), 4), 4).c_str());
        pos_ = 4;
        const uint32_t version = read<uint32_t>("the version");
        if (version == 1) error("GGUF version 1 is obsolete and not supported (versions 2 and 3 are)");
        if (version == 0x02000000u || version == 0x03000000u)
            error("big-endian GGUF file; only little-endian files are supported");
        if (version != 2 && version != 3)
            error("unsupported GGUF version %u (versions 2 and 3 are supported)", version);
        f_.version_ = version;
        n_tensors_ = read<uint64_t>("the tensor count");
        n_kv_ = read<uint64_t>("the metadata count");
        if (n_kv_ > left() / kMinKvBytes)
            error("header claims %llu metadata entries, more than the file's %zu bytes can hold",
                  (unsigned long long)n_kv_, size_);
        if (n_tensors_ > left() / kMinTensorInfoBytes)
            error("header claims %llu tensors, more than the file's %zu bytes can hold", (unsigned long long)n_tensors_,
                  size_);
    }

    // ---- metadata ----

    GgufType read_type(const char* what) {
        const uint32_t id = read<uint32_t>(what);
        if (id >= kGgufTypeCount) error("unknown value type id %u", id);
        return GgufType(id);
    }

    template <class T>
    GgufValue read_scalar() {
        if constexpr (std::is_same_v<T, std::string>) {
            return GgufValue(read_string("a string value"));
        } else if constexpr (std::is_same_v<T, bool>) {
            return GgufValue(read<uint8_t>("a bool value") != 0);
        } else {
            return GgufValue(read<T>("a value"));
        }
    }

    template <class T>
    GgufValue read_array(uint64_t n) {
        std::vector<T> items;
        if constexpr (std::is_same_v<T, std::string>) {
            // Each string takes at least its 8-byte length.
            if (n > left() / 8)
                error("array of %llu strings cannot fit in the %zu bytes left", (unsigned long long)n, left());
            items.reserve(size_t(n));
            for (uint64_t i = 0; i < n; ++i) items.push_back(read_string("an array string"));
        } else {
            constexpr size_t elem = std::is_same_v<T, bool> ? 1 : sizeof(T);
            if (n > left() / elem)
                error("array of %llu %s elements (%zu bytes each) runs past the end of the file (%zu bytes left)",
                      (unsigned long long)n, gguf_type_name(gguf_type_of<T>()), elem, left());
            items.resize(size_t(n));
            if constexpr (std::is_same_v<T, bool>) {
                for (size_t i = 0; i < size_t(n); ++i) items[i] = p_[pos_ + i] != 0;
            } else if (n > 0) {
                std::memcpy(items.data(), p_ + pos_, size_t(n) * elem);
            }
            pos_ += size_t(n) * elem;
        }
        return GgufValue(std::move(items));
    }

    // Calls fn.template operator()<T>() with the C++ type of a non-array GGUF type.
    template <class Fn>
    GgufValue dispatch(GgufType type, Fn&& fn) {
        switch (type) {
            case GgufType::U8:
                return fn.template operator()<uint8_t>();
            case GgufType::I8:
                return fn.template operator()<int8_t>();
            case GgufType::U16:
                return fn.template operator()<uint16_t>();
            case GgufType::I16:
                return fn.template operator()<int16_t>();
            case GgufType::U32:
                return fn.template operator()<uint32_t>();
            case GgufType::I32:
                return fn.template operator()<int32_t>();
            case GgufType::F32:
                return fn.template operator()<float>();
            case GgufType::Bool:
                return fn.template operator()<bool>();
            case GgufType::String:
                return fn.template operator()<std::string>();
            case GgufType::U64:
                return fn.template operator()<uint64_t>();
            case GgufType::I64:
                return fn.template operator()<int64_t>();
            case GgufType::F64:
                return fn.template operator()<double>();
            case GgufType::Array:
                break;
        }
        MOELITE_ASSERT_MSG(false, "dispatch on the array type");
        return GgufValue();
    }

    void parse_kv(uint64_t i) {
        where_ = strprintf("metadata entry %llu", (unsigned long long)i);
        std::string key = read_string("the key");
        if (key.empty()) error("empty key");
        where_ = strprintf("metadata entry %llu ('%s')", (unsigned long long)i, gguf_printable(key).c_str());
        if (f_.kv_index_.count(key)) error("duplicate metadata key '%s'", gguf_printable(key).c_str());

        const GgufType type = read_type("the value type");
        GgufValue value;
        if (type == GgufType::Array) {
            const GgufType elem = read_type("the array element type");
            if (elem == GgufType::Array) error("nested arrays are not supported");
            const uint64_t n = read<uint64_t>("the array length");
            value = dispatch(elem, [&]<class T>() { return read_array<T>(n); });
        } else {
            value = dispatch(type, [&]<class T>() { return read_scalar<T>(); });
        }
        f_.kv_index_.emplace(key, f_.kv_.size());
        f_.kv_.push_back(GgufKV{std::move(key), std::move(value)});
        where_.clear();
    }

    void parse_alignment() {
        const GgufValue* v = f_.find(kGgufAlignmentKey);
        if (!v) return;
        where_ = strprintf("metadata '%s'", kGgufAlignmentKey);
        const auto a = v->as_u64();
        if (!a) error("must be a non-negative integer, not %s %s", gguf_type_name(v->type()), v->to_string().c_str());
        if (*a == 0 || (*a & (*a - 1)) != 0) error("alignment %llu is not a power of two", (unsigned long long)*a);
        if (*a > kMaxAlignment) error("alignment %llu is too large", (unsigned long long)*a);
        f_.alignment_ = size_t(*a);
        where_.clear();
    }

    // ---- tensors ----

    void parse_tensor_info(uint64_t i) {
        where_ = strprintf("tensor %llu", (unsigned long long)i);
        GgufTensorInfo t;
        t.name = read_string("the tensor name");
        if (t.name.empty()) error("empty tensor name");
        where_ = strprintf("tensor %llu ('%s')", (unsigned long long)i, gguf_printable(t.name).c_str());
        if (f_.tensor_index_.count(t.name)) error("duplicate tensor name '%s'", gguf_printable(t.name).c_str());

        const uint32_t n_dims = read<uint32_t>("the number of dimensions");
        if (n_dims < 1 || n_dims > uint32_t(kMaxDims)) error("%u dimensions (must be 1 to %d)", n_dims, kMaxDims);
        t.n_dims = int(n_dims);
        int64_t nelements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            t.ne[d] = read<int64_t>("a dimension");
            if (t.ne[d] <= 0) error("dimension %u is %lld (must be positive)", d, (long long)t.ne[d]);
            if (__builtin_mul_overflow(nelements, t.ne[d], &nelements))
                error("shape %s has more elements than fit in 64 bits", t.shape_string().c_str());
        }

        const uint32_t type_id = read<uint32_t>("the tensor type");
        const auto type = dtype_from_id(type_id);
        if (!type) error("unknown tensor type id %u", type_id);
        t.type = *type;
        const int64_t block = dtype_block_size(t.type);
        if (t.ne[0] % block != 0)
            error("ne[0] = %lld is not a multiple of the %s block size %lld", (long long)t.ne[0], dtype_name(t.type),
                  (long long)block);
        if (__builtin_mul_overflow(size_t(nelements / block), dtype_block_bytes(t.type), &t.nbytes))
            error("shape %s of type %s is too large to address", t.shape_string().c_str(), dtype_name(t.type));

        t.offset = read<uint64_t>("the tensor offset");
        f_.tensor_index_.emplace(t.name, f_.tensors_.size());
        f_.tensors_.push_back(std::move(t));
        where_.clear();
    }

    void place_tensors() {
        const size_t align = f_.alignment_;
        size_t data_offset;
        if (__builtin_add_overflow(pos_, align - 1, &data_offset)) error("data section offset overflows");
        data_offset -= data_offset % align;
        if (f_.tensors_.empty()) {
            // Nothing is read from the data section; a file may end right after the header.
            f_.data_offset_ = std::min(data_offset, size_);
            return;
        }
        if (data_offset > size_)
            error("truncated file: the data section would start at offset %zu, past the end (file size %zu)",
                  data_offset, size_);
        f_.data_offset_ = data_offset;
        const size_t data_bytes = size_ - data_offset;

        for (GgufTensorInfo& t : f_.tensors_) {
            where_ = strprintf("tensor '%s'", gguf_printable(t.name).c_str());
            if (t.offset % align != 0)
                error("offset %llu is not a multiple of the alignment %zu", (unsigned long long)t.offset, align);
            if (t.offset > data_bytes || t.nbytes > data_bytes - t.offset)
                error("data at offset %llu + %zu bytes runs past the end of the file (the data section has %zu bytes)",
                      (unsigned long long)t.offset, t.nbytes, data_bytes);
            t.data = f_.base_ + data_offset + size_t(t.offset);
        }
        where_.clear();

        std::vector<const GgufTensorInfo*> order;
        order.reserve(f_.tensors_.size());
        for (const GgufTensorInfo& t : f_.tensors_) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->offset < b->offset; });
        for (size_t i = 1; i < order.size(); ++i) {
            const GgufTensorInfo& a = *order[i - 1];
            const GgufTensorInfo& b = *order[i];
            if (a.offset + a.nbytes > b.offset)
                error("tensors '%s' (offset %llu, %zu bytes) and '%s' (offset %llu) overlap",
                      gguf_printable(a.name).c_str(), (unsigned long long)a.offset, a.nbytes,
                      gguf_printable(b.name).c_str(), (unsigned long long)b.offset);
        }
    }

    GgufFile& f_;
    const uint8_t* p_;
    size_t size_;
    size_t pos_ = 0;
    uint64_t n_tensors_ = 0;
    uint64_t n_kv_ = 0;
    std::string where_;  // what is being parsed, for error messages
};

// ---------------------------------------------------------------------------

std::string GgufTensorInfo::shape_string() const {
    std::string s = "[";
    for (int i = 0; i < n_dims; ++i) {
        if (i) s += ", ";
        s += std::to_string(ne[i]);
    }
    return s + "]";
}

void gguf_tensor_view(const GgufTensorInfo& info, Tensor& t) {
    tensor_set_shape(t, info.type, info.ne, info.n_dims);
    // The mapping is read-only; Tensor::data is not const because the same
    // struct describes computed tensors too.
    t.data = const_cast<uint8_t*>(info.data);
    t.name = info.name;
    t.flags |= kTensorWeight;
}

GgufFile::~GgufFile() = default;

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->name_ = path;
    f->mapped_ = std::make_unique<MappedFile>(path);
    f->base_ = f->mapped_->data();
    f->size_ = f->mapped_->size();
    f->parse();
    return f;
}

std::unique_ptr<GgufFile> GgufFile::from_memory(const void* data, size_t size, std::string name) {
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->name_ = std::move(name);
    f->base_ = static_cast<const uint8_t*>(data);
    f->size_ = data ? size : 0;
    f->parse();
    return f;
}

void GgufFile::parse() {
    GgufParser(*this).parse();
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::get_tensor(std::string_view name) const {
    const GgufTensorInfo* t = find_tensor(name);
    if (!t) fail("%s: tensor '%.*s' not found", name_.c_str(), int(name.size()), name.data());
    return *t;
}

const GgufValue& GgufFile::require(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) fail("%s: metadata key '%.*s' not found", name_.c_str(), int(key.size()), key.data());
    return *v;
}

void GgufFile::wrong_type(std::string_view key, const GgufValue& v, const std::string& wanted) const {
    std::string got = v.is_array() ? strprintf("array of %s", gguf_type_name(v.element_type()))
                                   : std::string(gguf_type_name(v.type()));
    fail("%s: metadata key '%.*s' should be %s, but is %s %s", name_.c_str(), int(key.size()), key.data(),
         wanted.c_str(), got.c_str(), v.to_string(4, 40).c_str());
}

const std::string& GgufFile::get_string(std::string_view key) const {
    const GgufValue& v = require(key);
    const std::string* s = v.get_if<std::string>();
    if (!s) wrong_type(key, v, "a string");
    return *s;
}

uint64_t GgufFile::get_u64(std::string_view key) const {
    const GgufValue& v = require(key);
    const auto x = v.as_u64();
    if (!x) wrong_type(key, v, "a non-negative integer");
    return *x;
}

uint32_t GgufFile::get_u32(std::string_view key) const {
    const GgufValue& v = require(key);
    const auto x = v.as_u64();
    if (!x || *x > std::numeric_limits<uint32_t>::max()) wrong_type(key, v, "an integer in [0, 2^32)");
    return uint32_t(*x);
}

int64_t GgufFile::get_i64(std::string_view key) const {
    const GgufValue& v = require(key);
    const auto x = v.as_i64();
    if (!x) wrong_type(key, v, "a 64-bit signed integer");
    return *x;
}

double GgufFile::get_f64(std::string_view key) const {
    const GgufValue& v = require(key);
    const auto x = v.as_f64();
    if (!x) wrong_type(key, v, "a number");
    return *x;
}

float GgufFile::get_f32(std::string_view key) const {
    return float(get_f64(key));
}

bool GgufFile::get_bool(std::string_view key) const {
    const GgufValue& v = require(key);
    const bool* b = v.get_if<bool>();
    if (!b) wrong_type(key, v, "a bool");
    return *b;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
    const GgufValue& v = require(key);
    if (!v.is_array() || !gguf_type_is_integer(v.element_type())) wrong_type(key, v, "an array of integers");
    std::vector<int64_t> out;
    out.reserve(v.size());
    std::visit(
        [&](const auto& items) {
            using V = std::decay_t<decltype(items)>;
            if constexpr (std::is_same_v<V, std::vector<uint64_t>>) {
                for (uint64_t x : items) {
                    if (x > uint64_t(std::numeric_limits<int64_t>::max()))
                        fail("%s: metadata key '%.*s': element %llu does not fit in int64", name_.c_str(),
                             int(key.size()), key.data(), (unsigned long long)x);
                    out.push_back(int64_t(x));
                }
            } else if constexpr (std::is_same_v<V, std::vector<uint8_t>> || std::is_same_v<V, std::vector<int8_t>> ||
                                 std::is_same_v<V, std::vector<uint16_t>> || std::is_same_v<V, std::vector<int16_t>> ||
                                 std::is_same_v<V, std::vector<uint32_t>> || std::is_same_v<V, std::vector<int32_t>> ||
                                 std::is_same_v<V, std::vector<int64_t>>) {
                for (auto x : items) out.push_back(int64_t(x));
            }
        },
        v.array()->items);
    return out;
}

std::optional<std::string> GgufFile::opt_string(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_string(key);
}
std::optional<uint32_t> GgufFile::opt_u32(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_u32(key);
}
std::optional<uint64_t> GgufFile::opt_u64(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_u64(key);
}
std::optional<int64_t> GgufFile::opt_i64(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_i64(key);
}
std::optional<float> GgufFile::opt_f32(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_f32(key);
}
std::optional<double> GgufFile::opt_f64(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_f64(key);
}
std::optional<bool> GgufFile::opt_bool(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return get_bool(key);
}

}  // namespace moelite
